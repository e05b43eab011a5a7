// Package suite is the conformance suite's engine: the checks, the harness
// that drives a real plugin binary the way the host does, and the report.
// It does not import testing, so `tthost plugin conformance` runs it
// without linking test code into the host. Plugin authors use package
// conformance (its Run is the suite as subtests of a plugin's own `go
// test`); see that package's documentation for what is checked and why.
package suite
