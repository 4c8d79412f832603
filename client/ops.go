package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// Operation names of the /ws protocol's reads.
const (
	opHistory       = "history"
	opPresenceStats = "presence_stats"
)

// SubscribeOptions are a subscription's details for SubscribeWith.
type SubscribeOptions struct {
	// Since resumes after a position the application kept (as
	// SubscribeSince does).
	Since *Position
	// Latest asks for the channel's newest publication, if the server's
	// history still keeps it: it reaches OnPublication right after the
	// subscribe's answer (its offset is the answer's Offset), once, before
	// any live one. Ignored with Since, and on the resubscribes after a
	// reconnect (they resume from the last position instead).
	Latest bool
}

// SubscribeWith is Subscribe with options (see SubscribeOptions).
// Subscribing to a channel already subscribed returns the first answer
// again and changes nothing. Safe from any goroutine.
func (c *Client) SubscribeWith(ctx context.Context, channel string, o SubscribeOptions) (SubscribeResult, error) {
	return c.subscribe(ctx, channel, o)
}

// PublishOptions are a publication's options for PublishWith.
type PublishOptions struct {
	// SkipSelf: this connection does not get the publication back (the
	// user's other connections and everyone else do).
	SkipSelf bool
	// IdempotencyKey names the publication for the server's
	// deduplication (docs/protocol.md). Empty: the client makes a random
	// one. Either way the client resends the publication with its key
	// when the connection drops before the reply, so it is made once.
	IdempotencyKey string
}

// HistoryOptions select what History returns.
type HistoryOptions struct {
	// Limit caps the publications returned: the newest Limit, or with
	// Since the oldest Limit after it. 0 means the server's cap (1000);
	// more than that is refused.
	Limit int
	// Since, when set, asks for the publications after it (none if its
	// epoch is not the channel's current one).
	Since *Position
}

// HistoryResult is a history read: the kept publications selected,
// oldest first, and the channel's latest position (Epoch applies to every
// publication).
type HistoryResult struct {
	Publications []HistoryPublication `json:"publications"`
	Offset       uint64               `json:"offset"`
	Epoch        string               `json:"epoch"`
}

// HistoryPublication is one publication of a HistoryResult.
type HistoryPublication struct {
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data,omitempty"`     // a JSON publication's data
	DataB64 []byte          `json:"data_b64,omitempty"` // a binary publication's bytes
}

// History reads channel's kept publications (the server checks access as
// for a subscribe; no subscription is needed, except on channels whose
// subscribes the backend decides). Safe from any goroutine.
func (c *Client) History(ctx context.Context, channel string, o HistoryOptions) (HistoryResult, error) {
	r := request{Op: opHistory, Channel: channel, Since: o.Since}
	if o.Limit != 0 {
		limit := o.Limit
		r.Limit = &limit
	}
	res, err := c.do(ctx, r)
	if err != nil {
		return HistoryResult{}, err
	}
	var h HistoryResult
	if err := json.Unmarshal(res, &h); err != nil {
		return HistoryResult{}, fmt.Errorf("wsd client: bad history result: %w", err)
	}
	return h, nil
}

// PresenceStatsResult counts a channel's presence without listing it.
type PresenceStatsResult struct {
	Channel     string `json:"channel"`
	Count       int    `json:"count"`       // distinct clients per node, summed over the cluster's nodes
	Connections int    `json:"connections"` // subscriptions
}

// PresenceStats asks how many are subscribed to channel: cheap on big
// channels (no client list). Safe from any goroutine.
func (c *Client) PresenceStats(ctx context.Context, channel string) (PresenceStatsResult, error) {
	res, err := c.request(ctx, opPresenceStats, channel, nil)
	if err != nil {
		return PresenceStatsResult{}, err
	}
	var r PresenceStatsResult
	if err := json.Unmarshal(res, &r); err != nil {
		return PresenceStatsResult{}, fmt.Errorf("wsd client: bad presence_stats result: %w", err)
	}
	return r, nil
}

// selfPublishing notes a skip-self publish to channel about to be sent,
// if the client is subscribed to it (nil otherwise): gaps its offset
// leaves wait for its reply instead of being repaired at once.
func (c *Client) selfPublishing(channel string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[channel]
	if s != nil {
		s.selfPending++
	}
	return s
}

// selfPublished takes a skip-self publish's outcome: its offset is one
// the connection will never get, so the position moves over it; the
// pushes stashed behind it are handled again.
func (c *Client) selfPublished(channel string, s *subscription, r PublishResult, err error) {
	c.mu.Lock()
	s.selfPending--
	if c.subs[channel] != s {
		c.mu.Unlock()
		return
	}
	if err == nil && s.hasPos && r.Epoch == s.pos.Epoch && r.Offset > s.pos.Offset {
		s.skipped = append(s.skipped, r.Offset)
		c.skipOwnLocked(s)
	}
	stash, gen := s.stash, s.stashGen
	s.stash = nil
	cn := c.cur
	var frames [][]byte
	if cn != nil && cn.gen == gen && s.gen == gen && s.live {
		for i := range stash {
			frames = append(frames, c.publicationLocked(cn, s, &stash[i])...)
		}
	}
	c.mu.Unlock()
	if cn != nil {
		c.writeFrames(cn, frames)
	}
}
