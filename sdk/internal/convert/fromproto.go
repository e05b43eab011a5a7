package convert

// The plugin side's reading of host requests (see toproto.go for why this
// half lives here).

import (
	"fmt"
	"maps"

	"github.com/tthost/tthost/sdk"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// SessionConfigFromProto converts OpenSession's request.
func SessionConfigFromProto(p *backendv1.OpenSessionRequest) sdk.SessionConfig {
	return sdk.SessionConfig{
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

// InputFromProto converts Send's input; an unknown kind is an error.
func InputFromProto(p *backendv1.Input) (sdk.Input, error) {
	in := sdk.Input{Text: p.GetText(), TranscriptPath: p.GetTranscriptPath()}
	switch p.GetKind() {
	case backendv1.Input_KIND_TURN:
		in.Kind = sdk.InputTurn
	case backendv1.Input_KIND_URGENT:
		in.Kind = sdk.InputUrgent
	case backendv1.Input_KIND_CANCEL:
		in.Kind = sdk.InputCancel
	default:
		return sdk.Input{}, fmt.Errorf("unknown input kind %v", p.GetKind())
	}
	return in, nil
}

// CloseModeFromProto converts CloseSession's mode. An unspecified mode is
// graceful: the gentler choice when a host did not say.
func CloseModeFromProto(m backendv1.CloseSessionRequest_Mode) sdk.CloseMode {
	if m == backendv1.CloseSessionRequest_MODE_IMMEDIATE {
		return sdk.CloseImmediate
	}
	return sdk.CloseGraceful
}
