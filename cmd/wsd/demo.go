package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/wsproto"
)

// The demo (--demo, on in `make run`): the feeds the page at / shows — a
// stocks board, a news wire — and the namespaces its panels use, added
// only where the configuration has none of that name.

// demoSymbols are the stocks board's symbols: channel stocks:<symbol>.
var demoSymbols = []string{"WSD", "GNET", "NATS", "GOPH", "RFC"}

// demoHeadlines feed the news column (channel news:wire), in turn.
var demoHeadlines = []string{
	"Gophers hold a million idle sockets on one box",
	"RFC 6455 turns fifteen; still no frame bigger than 2^63",
	"Local event loop stays calm as reconnect storm passes",
	"Backend approves chat message after 0.2 ms of deliberation",
	"Stock in GNET rises on news of fewer goroutines",
	"JetStream keeps every offset through node restart",
	"Browser tab misses nothing during tunnel, reports exactly-once",
	"Deflate bomb defused at 16 MiB, nobody else notices",
}

// demoNamespaces are the demo panels' namespaces.
func demoNamespaces() pubsub.Namespaces {
	return pubsub.Namespaces{
		"stocks": {HistorySize: 120, Publish: pubsub.PublishNone},                                         // 1 min of ticks per symbol, for the charts
		"news":   {HistorySize: 50, Publish: pubsub.PublishNone},                                          // the wire's last 50 items (/sse too)
		"chat":   {HistorySize: 500, Presence: true, JoinLeave: true, Publish: pubsub.PublishSubscribers}, // a page shows the last 50; reconnects recover up to 500
		"game":   {Publish: pubsub.PublishSubscribers},                                                    // dot positions: live only
	}
}

// addDemoNamespaces adds the demo's namespaces the configuration lacks.
func (c *config) addDemoNamespaces() {
	for name, o := range demoNamespaces() {
		if _, ok := c.namespaces[name]; !ok {
			c.namespaces[name] = o
		}
	}
}

// runDemo publishes the feeds until ctx ends.
func runDemo(ctx context.Context, hub *wsproto.Hub, log *slog.Logger) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); demoStocks(ctx, hub, log) }()
	go func() { defer wg.Done(); demoNews(ctx, hub, log) }()
	wg.Wait()
}

// demoStocks moves each symbol's price on a random walk, one tick per
// symbol every 500 ms.
func demoStocks(ctx context.Context, hub *wsproto.Hub, log *slog.Logger) {
	prices := make([]float64, len(demoSymbols))
	for i := range prices {
		prices[i] = 50 + 25*float64(i)
	}
	every(ctx, 500*time.Millisecond, func(now time.Time) {
		for i, sym := range demoSymbols {
			prices[i] *= 1 + (rand.Float64()-0.5)/100
			data := fmt.Sprintf(`{"symbol":%q,"price":%.2f,"time":%q}`, sym, prices[i], now.UTC().Format(time.RFC3339Nano))
			demoPublish(ctx, hub, log, "stocks:"+sym, data)
		}
	})
}

// demoNews puts one headline on the wire every 3 s.
func demoNews(ctx context.Context, hub *wsproto.Hub, log *slog.Logger) {
	n := 0
	every(ctx, 3*time.Second, func(now time.Time) {
		title := demoHeadlines[n%len(demoHeadlines)]
		n++
		data := fmt.Sprintf(`{"n":%d,"title":%q,"time":%q}`, n, title, now.UTC().Format(time.RFC3339))
		demoPublish(ctx, hub, log, "news:wire", data)
	})
}

func every(ctx context.Context, d time.Duration, f func(time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

func demoPublish(ctx context.Context, hub *wsproto.Hub, log *slog.Logger, channel, data string) {
	if _, err := hub.Publish(ctx, channel, []byte(data)); err != nil && ctx.Err() == nil {
		log.Warn("demo feed", "channel", channel, "err", err)
	}
}
