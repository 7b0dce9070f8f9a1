package audit_test

import (
	"context"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/audit"
)

// BenchmarkAuditScenario is one whole audit of the scenario's log (about a
// dozen events) over attested TLS, as `cleanroom audit log` does it after
// connecting: checkpoint, consistency with the kept one, every tile and
// entry, every signature, the timeline, and the state kept.
func BenchmarkAuditScenario(b *testing.B) {
	w := getWorld(b)
	st, err := audit.OpenState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := audit.Run(context.Background(), w.config(nil), st); err != nil {
			b.Fatal(err)
		}
	}
}
