// Package asynq is a health check for the servers (worker processes) of
// github.com/hibiken/asynq: [Servers] counts the live ones from what they
// publish about themselves in Redis, for a [healthhandler.Handler]:
//
//	check, err := asynq.Servers(rdb, asynq.Options{Min: 1})
//	if err != nil {
//		return err
//	}
//	if err := health.Add(check); err != nil {
//		return err
//	}
//
// It reads only, needs no code in the servers and brings neither asynq nor
// protobuf into the program: a small decoder of its own reads the few
// fields of asynq's server state it needs.
package asynq
