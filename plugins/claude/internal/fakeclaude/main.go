// Command fakeclaude stands in for Claude Code in the Claude backend's
// fault tests (filled in below).
package main

func main() {}
