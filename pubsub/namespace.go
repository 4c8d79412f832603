package pubsub

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PublishPolicy says who may publish to a namespace's channels from a
// client connection. The server side (Hub.Publish from the embedder, the
// HTTP API) may always publish.
type PublishPolicy uint8

// Publish policies. The zero value is PublishAny.
const (
	PublishAny         PublishPolicy = iota // any client allowed on the channel
	PublishSubscribers                      // only clients subscribed to the channel
	PublishNone                             // no client: server side only (HTTP API)
)

// String returns "any", "subscribers" or "none".
func (p PublishPolicy) String() string {
	switch p {
	case PublishAny:
		return "any"
	case PublishSubscribers:
		return "subscribers"
	case PublishNone:
		return "none"
	}
	return fmt.Sprintf("PublishPolicy(%d)", p)
}

// ParsePublishPolicy parses "any", "subscribers" or "none".
func ParsePublishPolicy(s string) (PublishPolicy, error) {
	for p := PublishAny; p <= PublishNone; p++ {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown publish policy %q (want any, subscribers or none)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p PublishPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (config files, flags).
func (p *PublishPolicy) UnmarshalText(b []byte) error {
	v, err := ParsePublishPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// NamespaceOptions configure the channels of one namespace. The zero value
// keeps no history, tracks no presence and lets any client publish.
type NamespaceOptions struct {
	HistorySize int           // publications kept per channel for recovery; 0: none
	HistoryTTL  time.Duration // how long each is kept; 0: until pushed out by HistorySize
	Publish     PublishPolicy // who may publish from a client connection
	Presence    bool          // track which client IDs are subscribed
	// JoinLeave pushes a join when a client ID's first subscription to a
	// channel starts and a leave when its last one ends, to the channel's
	// other subscribers (docs/protocol.md). It needs Presence: joins and
	// leaves are changes of the presence's client IDs.
	JoinLeave bool
	// JoinLeaveMax, when positive, stops join and leave pushes on a node
	// while the channel has more than this many subscriptions there: each
	// event costs one push per subscription, so a join storm on a big
	// channel costs its square. 0: no cap.
	JoinLeaveMax int
	// Private makes a client's subscribe need a channel token: a JWT from
	// the application's backend for that client and channel (the /ws
	// handler checks it; docs/protocol.md).
	Private bool
}

// DefaultNamespaceOptions are sensible settings for a chat-like namespace:
// 100 publications kept for 10 minutes, anyone publishes, presence on.
func DefaultNamespaceOptions() NamespaceOptions {
	return NamespaceOptions{HistorySize: 100, HistoryTTL: 10 * time.Minute, Publish: PublishAny, Presence: true}
}

// MaxHistorySize bounds NamespaceOptions.HistorySize.
const MaxHistorySize = 1 << 20

// MaxChannelLen bounds a channel name's length in bytes.
const MaxChannelLen = 255

// Validate reports the first unusable setting.
func (o NamespaceOptions) Validate() error {
	switch {
	case o.HistorySize < 0 || o.HistorySize > MaxHistorySize:
		return fmt.Errorf("history_size %d out of range 0..%d", o.HistorySize, MaxHistorySize)
	case o.HistoryTTL < 0:
		return fmt.Errorf("history_ttl %v is negative", o.HistoryTTL)
	case o.Publish > PublishNone:
		return fmt.Errorf("publish policy %v is unknown", o.Publish)
	case o.JoinLeave && !o.Presence:
		return fmt.Errorf("join_leave = true needs presence = true")
	case o.JoinLeaveMax < 0:
		return fmt.Errorf("join_leave_max %d is negative", o.JoinLeaveMax)
	}
	return nil
}

// Namespaces maps a namespace name to its options. A channel "ns:rest"
// belongs to namespace "ns"; a channel without ':' to the default
// namespace, the entry with the empty key (zero options when absent).
type Namespaces map[string]NamespaceOptions

// Validate checks every namespace's name and options; errors name the
// namespace.
func (n Namespaces) Validate() error {
	for name, o := range n {
		if name != "" && !validNamespace(name) {
			return fmt.Errorf("namespace %q: name must be letters, digits, '_', '-' or '.'", name)
		}
		if err := o.Validate(); err != nil {
			if name == "" {
				return fmt.Errorf("default namespace: %w", err)
			}
			return fmt.Errorf("namespace %q: %w", name, err)
		}
	}
	return nil
}

// NamespaceOf returns the namespace part of channel: the text before the
// first ':', or "" (the default namespace) when there is none.
func NamespaceOf(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return ""
}

func validNamespace(s string) bool {
	if s == "" || len(s) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidChannel reports whether name is usable as a channel: 1 to 255
// bytes of printable ASCII without space, '"', '\\', '*', '?', '[', ']',
// '{' or '}' (the JSON and pattern metacharacters), and if it has a ':',
// a valid namespace name before the first one.
func ValidChannel(name string) bool {
	if name == "" || len(name) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '"', '\\', '*', '?', '[', ']', '{', '}':
			return false
		}
	}
	if i := strings.IndexByte(name, ':'); i >= 0 && !validNamespace(name[:i]) {
		return false
	}
	return true
}

// NamespaceKeys are the keys Set understands, as config files spell them.
func NamespaceKeys() []string {
	return []string{"history_size", "history_ttl", "publish", "presence", "join_leave", "join_leave_max", "private"}
}

// Set sets the option named key (one of NamespaceKeys) from its text form,
// for config files and flags: history_size = 100, history_ttl = "5m" (or
// a number of seconds), publish = "any" | "subscribers" | "none",
// presence = true | false, join_leave = true | false, join_leave_max = 0
// (no cap) or a number of subscriptions, private = true | false. Errors
// name the key.
func (o *NamespaceOptions) Set(key, value string) error {
	var err error
	switch key {
	case "history_size":
		var n int
		if n, err = strconv.Atoi(value); err == nil && (n < 0 || n > MaxHistorySize) {
			err = fmt.Errorf("out of range 0..%d", MaxHistorySize)
		}
		if err == nil {
			o.HistorySize = n
		}
	case "history_ttl":
		var d time.Duration
		if secs, perr := strconv.ParseInt(value, 10, 64); perr == nil {
			d = time.Duration(secs) * time.Second
		} else {
			d, err = time.ParseDuration(value)
		}
		if err == nil && d < 0 {
			err = fmt.Errorf("negative")
		}
		if err == nil {
			o.HistoryTTL = d
		}
	case "publish":
		var p PublishPolicy
		if p, err = ParsePublishPolicy(value); err == nil {
			o.Publish = p
		}
	case "presence":
		var b bool
		if b, err = strconv.ParseBool(value); err == nil {
			o.Presence = b
		}
	case "join_leave":
		var b bool
		if b, err = strconv.ParseBool(value); err == nil {
			o.JoinLeave = b
		}
	case "join_leave_max":
		var n int
		if n, err = strconv.Atoi(value); err == nil && n < 0 {
			err = fmt.Errorf("negative")
		}
		if err == nil {
			o.JoinLeaveMax = n
		}
	case "private":
		var b bool
		if b, err = strconv.ParseBool(value); err == nil {
			o.Private = b
		}
	default:
		return fmt.Errorf("unknown namespace key %q (known: %s)", key, strings.Join(NamespaceKeys(), ", "))
	}
	if err != nil {
		return fmt.Errorf("%s = %q: %w", key, value, err)
	}
	return nil
}
