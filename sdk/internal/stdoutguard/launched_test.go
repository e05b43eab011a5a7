//go:build unix

package stdoutguard

import "testing"

func TestLaunchedByHost(t *testing.T) {
	const ppid = 4242
	cases := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"a process without the cookie is no plugin", map[string]string{}, false},
		{"a process without the cookie is no plugin whatever the pid says", map[string]string{HostPIDEnv: "4242"}, false},
		{"the plugin of a host that names itself is guarded", map[string]string{CookieKey: "x", HostPIDEnv: "4242"}, true},
		{"a child that inherited the plugin's environment is not guarded", map[string]string{CookieKey: "x", HostPIDEnv: "1000"}, false},
		{"a plugin of a host that predates the pid is guarded on the cookie", map[string]string{CookieKey: "x"}, true},
		{"a pid that is not a number names no parent", map[string]string{CookieKey: "x", HostPIDEnv: "host"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := func(k string) string { return c.env[k] }
			if got := launchedByHost(getenv, ppid); got != c.want {
				t.Errorf("launchedByHost(%v, ppid %d) = %v, want %v", c.env, ppid, got, c.want)
			}
		})
	}
}
