package poller

// Descriptors held apart from the connections counted against MaxConns.
//
// gnet stops the whole engine when accept fails (EMFILE included: every
// loop exits and Serve returns), so the cap must bite before the kernel's
// does, under any burst. It does because of how the engine accepts on Linux
// (and FreeBSD, DragonFly): WithReusePort gives every loop its own listener,
// and a loop accepts one conn per readiness event and calls OnOpen for it
// before it accepts again. Each loop therefore holds at most
//   - its listener, its epoll and its eventfd (fdsPerLoop counts these),
//   - the conn it just accepted, not yet admitted or already refused (the
//     503 is written and the descriptor closed inside the same callback),
//   - a refused conn whose 503 write failed because the peer had already
//     reset: gnet then leaves it to the next poll round to close,
//
// on top of the conns counted by OnOpen's atomic admission, which runs from
// accept until OnClose (after which the loop closes the descriptor before
// it accepts again). What the process holds besides the engine (stdio, the
// Go runtime's poller, log files, the embedder's own files and sockets) is
// the proportional reserve. A spare descriptor released on EMFILE, the
// usual remedy, cannot work here: gnet's accept path stops the engine
// before any callback could release it.
//
// On macOS (and other BSDs) gnet turns SO_REUSEPORT off with several loops:
// one reactor drains the accept queue and hands conns to the loops, so
// OnOpen runs after a whole backlog may have been accepted. There the
// reserve is best effort.
const (
	fdsPerLoop   = 3 + 2
	minReserve   = 32
	reserveShare = 50 // 1/50 of the limit, for the rest of the process
)

// DefaultMaxConns is the most connections an engine with loops event loops
// can hold under fileLimit descriptors without ever failing an accept: the
// limit minus a reserve for the rest of the process (2 %, at least 32) and
// for each loop's own descriptors. It is at least 1; 0 means no limit is
// known. Serve uses it as the default and the ceiling of Config.MaxConns.
func DefaultMaxConns(fileLimit uint64, loops int) int {
	if fileLimit == 0 || fileLimit > 1<<30 {
		return 1 << 30
	}
	loops = max(loops, 1)
	reserve := max(fileLimit/reserveShare, minReserve) + uint64(loops)*fdsPerLoop
	if fileLimit <= reserve {
		return 1
	}
	return int(fileLimit - reserve)
}
