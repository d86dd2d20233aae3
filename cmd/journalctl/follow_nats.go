package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/relay"
	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// natsFollowFlags are the flags of state-journal -f --nats.
type natsFollowFlags struct {
	url    string
	stream string
	hosts  []string
}

func (f *natsFollowFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "nats", "", "with -f: follow the cluster-wide NATS JetStream stream at this URL instead of this journal (every host's relayed records, host as a column)")
	fl.StringVar(&f.stream, "stream", relay.DefaultStream, "with --nats: the stream to follow")
	fl.StringSliceVar(&f.hosts, "host", nil, "with --nats: only these hosts (repeatable or comma-separated)")
}

// natsColumns are the columns of -f --nats: the host, then a record's.
var natsColumns = append([]column{{title: "HOST", shrink: 6, min: 8}}, changeColumns...)

var natsWidths = append([]int{16}, followWidths...)

// runNATSFollow prints the stream's newest records (the last -n
// messages of the stream that match, 10 by default), then each new one,
// in the local journal's formats with the host added: a HOST column, a
// "host" field in JSON, the host in -o short and in CloudEvents' source.
// --after is a stream sequence here. It ends with exit 0 on SIGINT or
// SIGTERM or when the output is closed.
func runNATSFollow(g *globals, cmd *cobra.Command, nf natsFollowFlags, lq server.ListQuery, format string, limitSet bool) error {
	if format == outJSON {
		format = outJSONL
	}
	// The stream's records are filtered as the local journal's are: the
	// same checks, the same errors, a record found under every surface it
	// lists.
	filter, err := engine.NewFilter(lq.Query)
	if fe := (*types.FieldError)(nil); errors.As(err, &fe) {
		return queryFlagErr(fe)
	} else if err != nil {
		return usageErr("%v", err)
	}
	for _, h := range splitList(nf.hosts) {
		if err := relay.CheckHost(h); err != nil {
			return usageErr("--host %v", err)
		}
	}
	cfg := relay.FollowConfig{URL: nf.url, Stream: nf.stream, Hosts: splitList(nf.hosts), ChangeTypes: lq.ChangeTypes,
		After: lq.After, HasAfter: lq.Cursor, Last: 10}
	if limitSet && lq.Limit > 0 {
		cfg.Last = uint64(lq.Limit)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := bufio.NewWriter(g.out)
	defer w.Flush()
	var keep, widths []int
	fitted := g.width() > 0
	if format == outTable {
		keep, widths = layout(natsColumns, natsWidths, g.width())
		titles := make([]string, len(natsColumns))
		for i, c := range natsColumns {
			titles[i] = c.title
		}
		w.WriteString(line(pick(titles, keep), widths))
		w.WriteByte('\n')
		w.Flush()
	}
	errClosed := errors.New("output closed")
	err = relay.FollowStream(ctx, cfg, func(m relay.Message) error {
		c := m.Change
		if !filter.Match(&c) {
			return nil
		}
		switch format {
		case outTable:
			cells := pick(append([]string{m.Host}, changeCells(c)...), keep)
			if fitted {
				w.WriteString(line(cells, widths))
			} else {
				w.WriteString(lineWhole(cells, widths))
			}
			w.WriteByte('\n')
		case outShort:
			w.WriteString(m.Host + " " + shortLine(c) + "\n")
		case outCloudEvents:
			ev := toCloudEvent(c)
			ev.Source = m.Host + "/" + c.Source
			b, _ := json.Marshal(struct {
				cloudEvent
				Host string `json:"host"`
			}{ev, m.Host})
			w.Write(append(b, '\n'))
		default:
			b, _ := json.Marshal(c)
			w.WriteString(fmt.Sprintf(`{"host":%q,"stream_sequence":%d,`, m.Host, m.StreamSequence))
			w.Write(append(b[1:], '\n'))
		}
		if w.Flush() != nil {
			return errClosed
		}
		return nil
	})
	if err == nil || errors.Is(err, errClosed) || ctx.Err() != nil {
		return nil
	}
	return g.fail(exitProblems, err) // types.ErrNATSUnavailable: code nats_unavailable
}
