package cli

import "github.com/spf13/cobra"

// commands lists every subcommand of tthost.
func commands(f *Factory) []*cobra.Command {
	return []*cobra.Command{
		NewCmdInit(f, nil),
		NewCmdSpawn(f, nil),
		NewCmdList(f, nil),
		NewCmdStatus(f, nil),
		NewCmdSend(f, nil),
		NewCmdAssign(f, nil),
		NewCmdInbox(f, nil),
		NewCmdTask(f),
		NewCmdBacklog(f),
		NewCmdEvents(f, nil),
		NewCmdStop(f, nil),
		NewCmdKill(f, nil),
		NewCmdInterrupt(f, nil),
		NewCmdResume(f, nil),
		NewCmdRedis(f),
		NewCmdAgentLoop(f, nil),
		NewCmdServe(f, nil),
		NewCmdHosts(f, nil),
		NewCmdAdopt(f, nil),
		NewCmdPlugin(f),
		NewCmdVersion(f),
	}
}
