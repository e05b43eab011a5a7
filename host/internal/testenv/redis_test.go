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
