//go:build !race

package localbroker

const raceEnabled = false
