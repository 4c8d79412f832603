package natsbroker

// Kill stops b as kill -9 would leave the cluster: its presence entries
// stay in the bucket (nothing deletes or refreshes them) and its NATS
// connection closes.
func (b *Broker) Kill() {
	b.presence.abandon.Store(true)
	b.Close()
}
