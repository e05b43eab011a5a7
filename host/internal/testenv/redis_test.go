package testenv

import "testing"

func TestStartRedisServesCommands(t *testing.T) {
	r := StartRedis(t)
	if err := r.Client.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.Client.Get(t.Context(), "k").Val(); got != "v" {
		t.Fatalf("got %q", got)
	}
}

func TestRestartServesOnTheSameSocketWithTheSameArguments(t *testing.T) {
	r := StartRedisWith(t, RedisOptions{Args: []string{"--notify-keyspace-events", "Kl"}})
	first := r.Pid()
	r.Kill9()
	if err := r.Client.Ping(t.Context()).Err(); err == nil {
		t.Fatal("the killed server still answers")
	}
	r.Restart()
	if r.Pid() == first {
		t.Fatalf("pid %d did not change", first)
	}
	got, err := r.Client.ConfigGet(t.Context(), "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["notify-keyspace-events"] != "lK" {
		t.Fatalf("notify-keyspace-events = %q after the restart, want the argument's lK", got["notify-keyspace-events"])
	}
}
