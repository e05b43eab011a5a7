package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/client"
)

// BenchmarkColdStart measures a plugin's whole life without work: exec,
// checksum, handshake (AutoMTLS), Describe, then Stop until nothing of its
// process group is left. It reports the median besides the mean.
func BenchmarkColdStart(b *testing.B) {
	e := newEnv(b)
	cfg := e.config(build(b, "echo"))
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		p, err := client.Launch(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Stop(5 * time.Second); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "median-ns/op")
}
