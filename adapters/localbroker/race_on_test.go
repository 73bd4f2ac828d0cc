//go:build race

package localbroker

// raceEnabled: the race detector slows the engine about 20-fold.
const raceEnabled = true
