package audit

import (
	"path/filepath"
	"testing"
)

// BenchmarkAuditAppend measures AppendBatch on this machine's disk (the
// test's temporary directory) in batches as the relay's group commit
// makes them, with the default cap (so segments rotate and drop as they
// would after a million messages): entries/s, and the CPU per entry
// besides the one fsync per batch.
func BenchmarkAuditAppend(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(map[int]string{1: "batch1", 100: "batch100"}[n], func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "audit.log")
			l, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			batch := make([]Event, n)
			for i := range batch {
				batch[i] = Event{Event: "send", Actor: "eng-1", Target: "eng-2", Detail: "id=123456 kind=message sha256=0e9ff72af2163f22bff28d08d92e9c12671845b6316ced7ba8f3212f6c6875b7 len=42"}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := l.AppendBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*n)/s, "audit-entries/s")
			b.ReportMetric(float64(b.N)/s, "audit-fsyncs/s")
		})
	}
}
