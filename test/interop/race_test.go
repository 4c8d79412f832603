//go:build race

package interop

// raceEnabled is true when the tests run under -race; the daemon is then
// built with -race too, so a data race the clients provoke in the server is
// reported (see wsdProcess.raceReport).
const raceEnabled = true
