package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// PrintTopics writes topics as an aligned table for the CLI.
func PrintTopics(w io.Writer, topics []domain.Topic) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tTYPE\tQUEUES\tPERMISSION\tDESCRIPTION")
	for _, t := range topics {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cell(t.Name, 0), t.Type, t.QueueCount, permissionName(t.Permission), cell(t.Description, 60))
	}
	return tw.Flush()
}

// PrintTopic writes one topic as "field: value" lines (topic describe).
func PrintTopic(w io.Writer, t domain.Topic) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", cell(t.Name, 0))
	fmt.Fprintf(tw, "Type:\t%s\n", t.Type)
	fmt.Fprintf(tw, "Queues:\t%d\n", t.QueueCount)
	fmt.Fprintf(tw, "Permission:\t%s\n", permissionName(t.Permission))
	fmt.Fprintf(tw, "Description:\t%s\n", cell(t.Description, 0))
	fmt.Fprintf(tw, "Created:\t%s\n", timeCell(t.CreatedAt))
	fmt.Fprintf(tw, "Updated:\t%s\n", timeCell(t.UpdatedAt))
	return tw.Flush()
}

// PrintGroups writes consumer groups as an aligned table for the CLI.
func PrintGroups(w io.Writer, groups []domain.ConsumerGroup) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tMAX-ATTEMPTS\tRETRY\tORDERLY\tDESCRIPTION")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\n", cell(g.Name, 0), g.MaxDeliveryAttempts, retryCell(g.RetryPolicy, 4), g.Orderly, cell(g.Description, 60))
	}
	return tw.Flush()
}

// PrintGroup writes one consumer group as "field: value" lines (group
// describe), with the full retry policy.
func PrintGroup(w io.Writer, g domain.ConsumerGroup) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", cell(g.Name, 0))
	fmt.Fprintf(tw, "Max delivery attempts:\t%d\n", g.MaxDeliveryAttempts)
	fmt.Fprintf(tw, "Retry policy:\t%s\n", retryCell(g.RetryPolicy, 0))
	fmt.Fprintf(tw, "Orderly:\t%t\n", g.Orderly)
	fmt.Fprintf(tw, "Description:\t%s\n", cell(g.Description, 0))
	fmt.Fprintf(tw, "Created:\t%s\n", timeCell(g.CreatedAt))
	fmt.Fprintf(tw, "Updated:\t%s\n", timeCell(g.UpdatedAt))
	return tw.Flush()
}

// PrintGroupStats writes a group's per-queue progress, with the backlog
// (consumable + in flight) of each queue and a total line. An in-flight
// count the broker does not report is "?", the backlog then at least the
// consumable count (">=N"), unless the consumable count includes what is
// in flight (an orderly group's, in cluster mode), and a note under the
// table says what the other columns mean there. With no queue, a note says
// when there will be. Rows that name their broker (cluster mode) have a
// BROKER column. CONSUMED-UP-TO is the store time of the last message the
// group consumed up to (mqadmin consumerProgress's #LastTime), "-" for none.
func PrintGroupStats(w io.Writer, stats []ports.QueueStats) error {
	tw := newTable(w)
	brokers := slices.ContainsFunc(stats, func(q ports.QueueStats) bool { return q.Broker != "" })
	broker := func(q ports.QueueStats) string { return "" }
	if brokers {
		broker = func(q ports.QueueStats) string { return cell(q.Broker, 0) + "\t" }
	}
	fmt.Fprintln(tw, "TOPIC\t"+broker(ports.QueueStats{Broker: "BROKER"})+"QUEUE\tMAX-OFFSET\tACK-OFFSET\tIN-FLIGHT\tCONSUMABLE\tBACKLOG\tCONSUMED-UP-TO")
	var inFlight, consumable int64
	unknown, unsplit, partial := false, false, false
	for _, q := range stats {
		part := q.InFlightUnknown && !q.InFlightInConsumable // the backlog is a lower bound
		fmt.Fprintf(tw, "%s\t%s%d\t%d\t%d\t%s\t%d\t%s\t%s\n", cell(q.Topic, 0), broker(q), q.QueueID, q.MaxOffset, q.AckOffset,
			inFlightCell(q.InFlight, q.InFlightUnknown), q.Consumable, backlogCell(q.InFlight+q.Consumable, part), timeCell(q.ConsumedUpTo))
		inFlight += q.InFlight
		consumable += q.Consumable
		unknown = unknown || q.InFlightUnknown
		unsplit = unsplit || q.InFlightUnknown && q.InFlightInConsumable
		partial = partial || part
	}
	if len(stats) > 1 {
		pad := ""
		if brokers {
			pad = "\t"
		}
		fmt.Fprintf(tw, "TOTAL\t%s\t\t\t%s\t%d\t%s\n", pad, inFlightCell(inFlight, unknown), consumable, backlogCell(inFlight+consumable, partial))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(stats) == 0 {
		// A header alone looks like a failure: say why there is nothing.
		_, err := fmt.Fprintln(w, "no queues yet: a queue is listed once the group has received from it or a consumer of the group\n"+
			"connected to this proxy subscribes to its topic (local mode), or once a broker reports the\n"+
			"group's offsets (cluster mode).")
		return err
	}
	if partial {
		if _, err := fmt.Fprintln(w, "IN-FLIGHT ?: the brokers do not report messages delivered and not yet acked; there ACK-OFFSET is the\n"+
			"offset up to which messages were delivered, and CONSUMABLE counts the messages never delivered."); err != nil {
			return err
		}
	}
	if unsplit {
		_, err := fmt.Fprintln(w, "IN-FLIGHT ? with an exact BACKLOG (an orderly group): ACK-OFFSET is the offset up to which messages\n"+
			"were acked, and CONSUMABLE counts every message not acked, delivered (in flight) or not.")
		return err
	}
	return nil
}

func inFlightCell(n int64, unknown bool) string {
	if unknown {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

func backlogCell(n int64, unknown bool) string {
	if unknown {
		return ">=" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// PrintJSON writes v in the admin API's JSON form, so that `--output json`
// of the CLI prints what the API answers. v is a domain.Topic,
// []domain.Topic, domain.ConsumerGroup, []domain.ConsumerGroup or
// []ports.QueueStats (the latter printed as the queues of [GroupStats]).
func PrintJSON(w io.Writer, v any) error {
	var out any
	switch x := v.(type) {
	case domain.Topic:
		out = topicDTO(x)
	case []domain.Topic:
		out = topicsDTO(x)
	case domain.ConsumerGroup:
		out = groupDTO(x)
	case []domain.ConsumerGroup:
		out = groupsDTO(x)
	case []ports.QueueStats:
		out = statsDTO("", x).Queues
	case ClientList, ClientAnswer, ResetOffsetResult:
		out = x
	default:
		return fmt.Errorf("admin: PrintJSON cannot print %T", v)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// cell makes s safe for one table cell: control characters (tabs and
// newlines would break the alignment) become spaces, and s is cut to max
// runes when max > 0.
func cell(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	if r := []rune(s); max > 0 && len(r) > max {
		return string(r[:max-3]) + "..."
	}
	return s
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// retryCell summarises a retry policy; max > 0 lists at most max delays.
func retryCell(p domain.RetryPolicy, max int) string {
	if len(p.Delays) == 0 {
		return fmt.Sprintf("exponential %s..%s x%s", formatDuration(p.Initial), formatDuration(p.Max), strconv.FormatFloat(p.Multiplier, 'g', -1, 64))
	}
	ds := p.Delays
	suffix := ""
	if max > 0 && len(ds) > max {
		ds, suffix = ds[:max], fmt.Sprintf(",... (%d delays)", len(p.Delays))
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = formatDuration(d)
	}
	return "customized " + strings.Join(parts, ",") + suffix
}

// PrintReset writes what a reset did: per queue the offset the group
// stood at (its ack offset) and the one it stands at now. Rows that name
// their broker (cluster mode) have a BROKER column.
func PrintReset(w io.Writer, r ResetOffsetResult) error {
	tw := newTable(w)
	brokers := slices.ContainsFunc(r.Queues, func(q QueueReset) bool { return q.Broker != "" })
	broker := func(string) string { return "" }
	if brokers {
		broker = func(b string) string { return cell(b, 0) + "\t" }
	}
	fmt.Fprintln(tw, "TOPIC\t"+broker("BROKER")+"QUEUE\tOLD-OFFSET\tNEW-OFFSET")
	for _, q := range r.Queues {
		fmt.Fprintf(tw, "%s\t%s%d\t%d\t%d\n", cell(r.Topic, 0), broker(q.Broker), q.QueueID, q.OldOffset, q.NewOffset)
	}
	return tw.Flush()
}
