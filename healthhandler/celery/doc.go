// Package celery counts the workers of a Celery app that uses Redis as its
// broker, for a [healthhandler.Handler], with no code in the workers. Two
// ways, with different trade-offs (see their docs):
//
//   - [NewEvents] starts an [Events] listener of the heartbeats every
//     worker publishes: read-only, one pub/sub connection of its own, but
//     blind for one heartbeat interval after start. Its [Events.Check] is
//     the check; Close stops it.
//   - [Ping] builds a check that asks the workers, as "celery inspect
//     ping" does: an answer at once, at the cost of a short-lived binding
//     and reply list in Redis that it always removes.
//
// For example:
//
//	events, err := celery.NewEvents(rdb, celery.Options{Min: 1})
//	if err != nil {
//		return err
//	}
//	defer events.Close()
//	if err := health.Add(events.Check()); err != nil {
//		return err
//	}
//
// Everything the package reads from the broker (kombu's envelopes, worker
// events, control replies) is foreign input: a message that is not what
// the protocol says is skipped and counted as malformed, never trusted.
package celery
