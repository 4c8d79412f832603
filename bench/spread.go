package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ChannelSlot is where a channel pattern takes the channel's number:
// "feed:%d" names feed:0, feed:1, … (per-user channels).
const ChannelSlot = "%d"

// MaxSpreadChannels bounds --channels: one channel per subscriber of the
// largest run is plenty.
const MaxSpreadChannels = MaxConns

// ErrChannelPattern is returned for a pattern that does not name channels.
var ErrChannelPattern = errors.New("channel pattern")

// checkChannelPattern checks that pattern holds ChannelSlot exactly once
// and that the n channels it names (the longest is n-1's) are valid
// channel names.
func checkChannelPattern(pattern string, n int) error {
	if n < 1 || n > MaxSpreadChannels {
		return fmt.Errorf("%w: --channels must be 1..%d", ErrChannelPattern, MaxSpreadChannels)
	}
	if strings.Count(pattern, ChannelSlot) != 1 {
		return fmt.Errorf("%w %q: want %s exactly once, e.g. feed:%s", ErrChannelPattern, pattern, ChannelSlot, ChannelSlot)
	}
	return checkChannel(string(appendSpreadChannel(nil, pattern, n-1)))
}

// appendSpreadChannel appends channel i of pattern (checked by
// checkChannelPattern). It does not allocate when dst has room.
func appendSpreadChannel(dst []byte, pattern string, i int) []byte {
	before, after, _ := strings.Cut(pattern, ChannelSlot)
	dst = append(dst, before...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, after...)
}
