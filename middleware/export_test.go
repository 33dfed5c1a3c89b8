package middleware

import "time"

// SetFlightLinger sets how long a flight whose entry was stored stays
// findable (flightLinger), for tests that look at single requests right
// after a fault and want each answered by the store or the handler.
func SetFlightLinger(c *Cache, d time.Duration) { c.linger = d }

// FlightSettled reports whether the write of the entry made by the flight
// for key has ended, stored or not.
func FlightSettled(c *Cache, key string) bool {
	c.flights.mu.Lock()
	defer c.flights.mu.Unlock()
	f := c.flights.m[key]
	return f != nil && f.settled
}
