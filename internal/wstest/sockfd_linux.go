package wstest

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ServerSideFD returns, among this process's descriptors, the server's end
// of the loopback TCP conn c, for tests that run the server in-process and
// inspect its accepted socket (getsockopt): the socket whose local address
// is c's remote one and whose peer is c's local one.
func ServerSideFD(c net.Conn) (int, error) {
	local, ok1 := c.RemoteAddr().(*net.TCPAddr)
	peer, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, fmt.Errorf("wstest: %T is not a TCP conn", c)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, err
	}
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if link, _ := os.Readlink("/proc/self/fd/" + ent.Name()); !strings.HasPrefix(link, "socket:") {
			continue
		}
		if sameAddr(unix.Getsockname(fd))(local) && sameAddr(unix.Getpeername(fd))(peer) {
			return fd, nil
		}
	}
	return -1, fmt.Errorf("wstest: no descriptor of this process is the server side of %v", local)
}

func sameAddr(sa unix.Sockaddr, err error) func(*net.TCPAddr) bool {
	return func(a *net.TCPAddr) bool {
		in, ok := sa.(*unix.SockaddrInet4)
		return err == nil && ok && in.Port == a.Port && net.IP(in.Addr[:]).Equal(a.IP)
	}
}
