// Package loadgen is a bounded, closed-loop HTTP load generator for
// steadfast's benchmarks and fault tests.
//
// [Run] starts a fixed number of workers over an [http.Transport] of the
// run's own that keeps at most one keep-alive connection per worker; each
// worker sends its next request as soon as the previous one is answered
// (or, with [Options.Rate], when its turn in a fixed schedule comes). It stops by
// itself when [Options.Duration] has passed or [Options.Requests] have been
// sent, waits for requests in flight, closes its connections and returns a
// [Result]: counts, throughput, latency percentiles, a status histogram, and
// every request as a [Sample] so that a window of the run (while a fault was
// on, say) can be summarised with [Result.Between].
//
// Traffic goes only to loopback addresses (127.0.0.0/8 and ::1, as IP
// literals): a request to any other host fails with [ErrNotLoopback] and
// stops the run, and the transport refuses to dial anything else.
//
// Every request is kept as a Sample (40 bytes), so memory grows with the
// run: about 40 MB for a million requests.
//
// Run leaves no goroutine behind once it returns, apart from the
// connection goroutines of net/http that exit on their own a moment after
// their connection is closed.
package loadgen
