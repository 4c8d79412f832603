//go:build linux

package bench

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// dialNonblock starts a non-blocking TCP connect from src (if valid) to dst
// and returns the socket. The connect is usually still in progress: wait for
// EPOLLOUT, then check connectError.
func dialNonblock(dst netip.AddrPort, src netip.Addr) (int, error) {
	family := unix.AF_INET
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if src.IsValid() && src.Is4() == dst.Addr().Is4() {
		// Defer the port choice to connect(), so that each source address
		// gets its own 4-tuple space instead of one port range for all.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	err = unix.Connect(fd, sockaddr(dst))
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}

// connectError is the outcome of a non-blocking connect.
func connectError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// closeAbort closes fd with an RST (SO_LINGER 0), so the client side keeps
// no TIME_WAIT socket and repeated runs do not run out of ports.
func closeAbort(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	_ = unix.Close(fd)
}

// errReason turns a socket error into a short counter key.
func errReason(prefix string, err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		switch e {
		case unix.ECONNREFUSED:
			return prefix + ": refused"
		case unix.ECONNRESET:
			return prefix + ": reset"
		case unix.ETIMEDOUT:
			return prefix + ": timeout"
		case unix.EADDRNOTAVAIL:
			return prefix + ": no free port (use --source-ips)"
		case unix.EMFILE, unix.ENFILE:
			return prefix + ": out of file descriptors (use --procs)"
		case unix.EPIPE:
			return prefix + ": broken pipe"
		}
		return prefix + ": " + e.Error()
	}
	return prefix + ": " + err.Error()
}
