package segment

import (
	"encoding/json"

	"github.com/agentruntime/statejournal/types"
)

// MarshalJSON writes at in types.TimeLayout, the one time format of the
// journal's JSON.
func (c Cut) MarshalJSON() ([]byte, error) {
	type plain Cut
	return json.Marshal(struct {
		plain
		At string `json:"at"`
	}{plain(c), types.FormatTime(c.At)})
}
