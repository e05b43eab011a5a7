package sdk

// The plugin side's reading of host requests (see toproto.go for why this
// half lives here).

import (
	"fmt"
	"maps"

	backendv1 "github.com/tthost/tthost/proto/tthost/backend/v1"
)

// sessionConfigFromProto converts OpenSession's request.
func sessionConfigFromProto(p *backendv1.OpenSessionRequest) SessionConfig {
	return SessionConfig{
		CLIName:   p.GetCliName(),
		Command:   p.GetCommand(),
		Workdir:   p.GetWorkdir(),
		Env:       maps.Clone(p.GetEnv()),
		ResumeID:  p.GetResumeId(),
		Options:   maps.Clone(p.GetOptions()),
		AgentID:   p.GetAgentId(),
		AgentName: p.GetAgentName(),
		LogDir:    p.GetLogDir(),
	}
}

// inputFromProto converts Send's input; an unknown kind is an error.
func inputFromProto(p *backendv1.Input) (Input, error) {
	in := Input{Text: p.GetText(), TranscriptPath: p.GetTranscriptPath()}
	switch p.GetKind() {
	case backendv1.Input_KIND_TURN:
		in.Kind = InputTurn
	case backendv1.Input_KIND_URGENT:
		in.Kind = InputUrgent
	case backendv1.Input_KIND_CANCEL:
		in.Kind = InputCancel
	default:
		return Input{}, fmt.Errorf("unknown input kind %v", p.GetKind())
	}
	return in, nil
}

// closeModeFromProto converts CloseSession's mode. An unspecified mode is
// graceful: the gentler choice when a host did not say.
func closeModeFromProto(m backendv1.CloseSessionRequest_Mode) CloseMode {
	if m == backendv1.CloseSessionRequest_MODE_IMMEDIATE {
		return CloseImmediate
	}
	return CloseGraceful
}
