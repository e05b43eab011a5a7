package testenv

import "testing"

func TestRedisServerKeepsItsDataAcrossKill9AndRestart(t *testing.T) {
	r := StartRedisWith(t, RedisOptions{TCP: true, Unix: true, AppendOnly: true})
	if err := r.Client.RPush(t.Context(), "l", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	pid := r.Pid()
	r.Kill9()
	if r.Pid() != 0 {
		t.Fatalf("Pid %d after Kill9, want 0", r.Pid())
	}
	if err := r.Client.Ping(t.Context()).Err(); err == nil {
		t.Fatal("ping succeeded while the server was down")
	}
	r.Restart()
	if r.Pid() == 0 || r.Pid() == pid {
		t.Fatalf("Pid %d after Restart (was %d)", r.Pid(), pid)
	}
	got, err := r.Client.LRange(t.Context(), "l", 0, -1).Result()
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("after restart: %q %v; want [a b] from the append-only file", got, err)
	}
}
