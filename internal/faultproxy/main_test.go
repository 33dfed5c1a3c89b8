package faultproxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close leaves no goroutine of the proxy behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
