// Package healthhandler serves a service's health over HTTP in the format
// of the IETF draft "Health Check Response Format for HTTP APIs"
// (application/health+json), and counts worker processes by their
// heartbeats.
//
// A [Handler], built by [New], runs each [Check] added to it in the
// background and serves the latest results in three views, mounted
// together:
//
//	health, err := healthhandler.New(healthhandler.Options{ServiceID: "items-api"})
//	if err != nil { ... }
//	defer health.Close()
//	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{})
//	if err != nil { ... }
//	workers, err := healthhandler.Workers(rdb, healthhandler.WorkersOptions{Min: 1})
//	if err != nil { ... }
//	if err := health.Add(redisCheck); err != nil { ... }
//	if err := health.Add(workers); err != nil { ... }
//	mux.Handle("/health", health)  // the full report
//	mux.Handle("/health/", health) // /health/live and /health/ready
//
// A Check is a name, an interval, a timeout and a Run function: [Redis]
// and [Workers] build ready-made ones, and any other dependency gets its
// own. The packages healthhandler/celery (Celery workers, by their events
// or a ping) and healthhandler/asynq (asynq servers) build checks of
// workers written without steadfast.
//
// The three views:
//
//   - /health, the full report: every check. A failing non-critical check
//     (Redis used as a cache) makes it "warn" with HTTP 200; a failing
//     critical one makes it "fail" with HTTP 503.
//   - /health/live, liveness: always 200 "pass" while the process serves;
//     it checks no dependency, so an orchestrator never restarts a healthy
//     process because Redis is down.
//   - /health/ready, readiness: the critical checks only; 503 until each
//     has run once, while one fails, and after [Handler.Drain] (call it when
//     shutdown starts).
//
// The Handler picks the view by the last segment of the path, so it works
// under any prefix; [Handler.Live] and [Handler.Ready] give the two views
// as handlers of their own, for other paths. Only GET and HEAD are served,
// always with Cache-Control: no-store.
//
// Checks run in the background, each in its own goroutine, at once when
// added and then every Interval, each run cancelled at its Timeout and then
// reported failing. A request never runs a check and never waits: it reads
// the latest results, encoded in advance, so any number of concurrent
// requests cost the dependencies nothing. Every result carries the time it
// was taken. Before a check's first result it shows "warn" with output "not
// yet checked".
//
// What a report shows depends on the caller: [Options.ShowDetails] decides
// who may read error texts and host names; everyone else reads statuses,
// figures and short generic texts such as "redis unavailable". Nobody ever
// reads a password, a URL's credentials or a stack trace: texts are cut to
// their first line and credentials are replaced by "***".
//
// Status changes are logged once each and reported to [Options.OnChange];
// [Handler.Stats] gives a snapshot. Invalid options and checks give errors
// wrapping [ErrInvalidOption].
package healthhandler
