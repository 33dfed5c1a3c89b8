package cachepolicy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. The package starts
// none; the check keeps it that way.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
