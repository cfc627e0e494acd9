package vad

import "testing"

// budgetNs is what one 20 ms frame may cost: 3 % of one core for 1000
// calls is 30 ms of CPU a second for 50 000 frames a second.
const budgetNs = 600

// BenchmarkProcess measures one 20 ms frame of speech in noise and reports
// its cost as a share of budgetNs (frac-of-budget).
func BenchmarkProcess(b *testing.B) {
	audio := utterance(5, 4000, 1000, 3000, -50, -20)
	d := New(Config{})
	ts := int64(0)
	for b.Loop() {
		i := int(ts*8) % len(audio)
		for _, ok := d.Process(audio[i:i+FrameSize], ts); ok; _, ok = d.Next() {
		}
		ts += FrameMs
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/budgetNs, "frac-of-budget")
}
