package main

import "testing"

// run feeds the returner one tick per entry of accepts (new accepts in that
// second) and returns the ticks after which it freed memory.
func runReturner(accepts []uint64) []int {
	var total uint64
	var freed []int
	tick := 0
	m := newMemoryReturner(func() uint64 { return total }, func() { freed = append(freed, tick) })
	for i, n := range accepts {
		tick = i
		total += n
		m.tick()
	}
	return freed
}

func repeat(n int, v uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func cat(parts ...[]uint64) []uint64 {
	var s []uint64
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

func TestReturnMemoryAfterBurst(t *testing.T) {
	// 1200 accepts over 3 s, then quiet: one free, on the second quiet tick.
	got := runReturner(cat(repeat(3, 400), repeat(10, 0)))
	if len(got) != 1 || got[0] != 4 {
		t.Fatalf("freed after ticks %v, want [4]", got)
	}
	// Two storms far apart: one free after each.
	got = runReturner(cat(repeat(2, 800), repeat(5, 0), repeat(2, 700), repeat(5, 0)))
	if len(got) != 2 {
		t.Fatalf("freed after ticks %v, want two frees", got)
	}
}

// Bug: accepts counted since start, so a trickle with pauses added up to a
// "burst" of 1000 after enough hours. A burst is 1000 accepts within the
// window, then quiet.
func TestReturnMemoryIgnoresTrickle(t *testing.T) {
	var trickle []uint64
	for range 200 { // 30 accepts a second for 3 s, then 2 s of quiet: never a burst
		trickle = append(trickle, 30, 30, 30, 0, 0)
	}
	if got := runReturner(trickle); len(got) != 0 {
		t.Fatalf("a trickle of %d accepts freed memory after ticks %v", 200*90, got)
	}
	// Steady traffic never has the quiet it needs.
	if got := runReturner(repeat(100, 500)); len(got) != 0 {
		t.Fatalf("busy server freed memory after ticks %v", got)
	}
	// 900 quick accepts, a long pause, then 900 more: two small bursts, not one big one.
	if got := runReturner(cat(repeat(3, 300), repeat(windowTicks, 0), repeat(3, 300), repeat(3, 0))); len(got) != 0 {
		t.Fatalf("two bursts under %d freed memory after ticks %v", minBurst, got)
	}
}
