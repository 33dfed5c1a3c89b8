// Package asynqtest checks healthhandler/asynq.Servers against real asynq
// servers.
//
// It is a module of its own so that asynq, which only its tests use, never
// enters the build of the library's users: run it from this directory with
// go test -race -count=1 ./... (the root module's ./... does not include
// it). Like the root module's fault tests, it needs redis-server on PATH,
// and skips without it unless STEADFAST_REQUIRE_REDIS=1.
package asynqtest
