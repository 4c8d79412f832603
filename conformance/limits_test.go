package conformance

import (
	"bytes"
	"testing"
	"time"
)

// Message size limits: decided from the frame header, before the payload.
func TestLimitsSmall(t *testing.T) {
	exact := textPayload(maxSmall)
	var pingsBetween [][]byte
	var pongs []want
	msg := binPayload(maxSmall, 7)
	frags := fragments(opBinary, msg, maxSmall/8)
	for i, f := range frags {
		pingsBetween = append(pingsBetween, f)
		if i < len(frags)-1 {
			p := bytes.Repeat([]byte{byte(i)}, 125)
			pingsBetween = append(pingsBetween, fr(opPing, p))
			pongs = append(pongs, pong(p))
		}
	}
	runCases(t, srvSmall, Options{}, []wireCase{
		{"header announcing max+1, no payload", [][]byte{Header(opBinary, true, 0, maxSmall+1)}, []want{closed(1009)}},
		{"header announcing 1 TiB, no payload", [][]byte{Header(opText, true, 0, 1<<40)}, []want{closed(1009)}},
		{"exactly max echoes", [][]byte{fr(opText, exact)}, []want{textB(exact)}},
		{"max+1 in one frame", [][]byte{fr(opBinary, binPayload(maxSmall+1, 1))}, []want{closed(1009)}},
		{"fragments totalling max echo", fragments(opText, exact, 1000), []want{textB(exact)}},
		{"two 40000-byte fragments", [][]byte{
			Frame(opBinary, false, 0, binPayload(40000, 1)), Frame(opCont, true, 0, binPayload(40000, 2)),
		}, []want{closed(1009)}},
		{"40000-byte fragment, then a header announcing 30000", [][]byte{
			Frame(opBinary, false, 0, binPayload(40000, 1)), Header(opCont, true, 0, 30000),
		}, []want{closed(1009)}},
		{"1 KiB fragments totalling max+1", fragments(opText, textPayload(maxSmall+1), 1024), []want{closed(1009)}},
		{"control frames do not count towards the message", pingsBetween, append(pongs, bin(msg))},
	}, oneWrite)
	srvSmall.healthy(t)
}

func TestLimitsDefault(t *testing.T) {
	t.Run("header announcing 16 MiB + 1, no payload", func(t *testing.T) {
		t.Parallel()
		runCase(t, srvDefault, Options{}, wireCase{"", [][]byte{Header(opBinary, true, 0, maxDefault+1)}, []want{closed(1009)}}, oneWrite)
	})
	t.Run("fragments of 8 MiB + 8 MiB, then a header announcing 1 more byte", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvDefault, Options{})
		defer c.Close()
		c.Timeout = 30 * time.Second
		half := binPayload(maxDefault/2, 3)
		s := sendAsync(c, [][]byte{Frame(opBinary, false, 0, half), Frame(opCont, false, 0, half), Header(opCont, true, 0, 1)}, oneWrite)
		defer s.wait()
		expect(t, c, closed(1009))
	})
}
