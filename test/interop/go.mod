module github.com/wsdhq/wsd/test/interop

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	go.uber.org/goleak v1.3.0
)
