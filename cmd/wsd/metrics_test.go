package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsdhq/wsd/poller"
	"github.com/wsdhq/wsd/server"
)

// The memory budget's gauges and its closes by cause reach /metrics.
func TestMetricsMemoryBudget(t *testing.T) {
	st := server.Stats{
		Memory:    poller.MemoryUsage{Limit: 64 << 20, Inbound: 1000, Outbound: 200, Extra: 30},
		Closes:    map[string]uint64{"memory_shed": 7, "memory_refused": 3},
		Offloaded: 5,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newEngineCollector(func() server.Stats { return st }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetValue() + "}"
			}
			switch {
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"wsd_memory_budget_bytes":              64 << 20,
		"wsd_memory_accounted_bytes{inbound}":  1000,
		"wsd_memory_accounted_bytes{outbound}": 200,
		"wsd_memory_accounted_bytes{history}":  30,
		"wsd_closes_total{memory_shed}":        7,
		"wsd_closes_total{memory_refused}":     3,
		"wsd_handshakes_total{memory_refused}": 3,
		"wsd_messages_offloaded_total":         5,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
