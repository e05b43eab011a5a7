//go:build race

package sdktest

// raceEnabled: the test binary runs under the race detector, so Build
// builds binaries with it too and races in child processes fail loudly.
const raceEnabled = true
