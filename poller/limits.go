package poller

// DefaultMaxConns leaves a reserve of descriptors below the file limit for
// listeners, epoll, logs and the few connections accepted between two
// checks: gnet shuts the whole engine down when accept fails with EMFILE,
// so the cap must bite before the kernel's does.
func DefaultMaxConns(fileLimit uint64) int {
	if fileLimit == 0 || fileLimit > 1<<30 {
		return 1 << 30
	}
	reserve := max(fileLimit/50, 32)
	if fileLimit <= reserve+16 {
		return 16
	}
	return int(fileLimit - reserve)
}
