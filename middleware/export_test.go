package middleware

import "time"

// SetFlightLinger sets how long a flight whose entry was stored stays
// findable (flightLinger), for tests that look at single requests right
// after a fault and want each answered by the store or the handler.
func SetFlightLinger(c *Cache, d time.Duration) { c.linger = d }
