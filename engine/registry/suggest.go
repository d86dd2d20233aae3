package registry

import "strings"

// maxSuggestInput bounds the length of an input worth suggesting for, so a
// hostile multi-megabyte value cannot make an edit-distance search quadratic.
const maxSuggestInput = 128

// runtimePrefix is the prefix every default surface id carries; users often
// leave it off ("work_session").
const runtimePrefix = "runtime_"

// Suggest returns the registered surface id closest to id, for a "did you
// mean" hint, or "" when nothing is close. Matching is case-insensitive,
// treats '.', '-' and spaces as '_' ("runtime.approvals"), and also compares
// against ids without their runtime_ prefix ("work_session"). Ties go to the
// id declared first.
func (r *Registry) Suggest(id string) string {
	norm := normalizeID(id)
	if norm == "" || len(norm) > maxSuggestInput {
		return ""
	}
	if _, ok := r.byID[norm]; ok {
		return norm
	}
	unprefixed := !strings.HasPrefix(norm, runtimePrefix)
	if unprefixed {
		if _, ok := r.byID[runtimePrefix+norm]; ok {
			return runtimePrefix + norm
		}
	}
	best, bestDist := "", -1
	for _, s := range r.surfaces {
		d := editDistance(norm, s.ID)
		if unprefixed {
			d = min(d, editDistance(norm, strings.TrimPrefix(s.ID, runtimePrefix)))
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = s.ID, d
		}
	}
	if bestDist >= 0 && bestDist <= closeEnough(norm) {
		return best
	}
	return ""
}

// SuggestSnapshot returns the snapshot id (or "none") closest to hint, or
// "" when nothing is close.
func (r *Registry) SuggestSnapshot(hint string) string {
	return closest(hint, append(r.SnapshotIDs(), SnapshotNone))
}

// normalizeID folds the spellings people use for an id onto the registry's:
// lower case, with '.', '-' and spaces as '_'.
func normalizeID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '-', ' ':
			return '_'
		}
		return r
	}, s)
}

// closest returns the candidate nearest to in by case-insensitive edit
// distance, or "" when none is close enough. Ties go to the earlier
// candidate.
func closest(in string, candidates []string) string {
	low := strings.ToLower(strings.TrimSpace(in))
	if low == "" || len(low) > maxSuggestInput {
		return ""
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		if len(c) > maxSuggestInput {
			continue
		}
		d := editDistance(low, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist >= 0 && bestDist <= closeEnough(low) {
		return best
	}
	return ""
}

// closeEnough is the largest edit distance still worth suggesting for an
// input of s's length: short inputs tolerate one typo, long ones three.
func closeEnough(s string) int {
	switch n := len(s); {
	case n <= 3:
		return 1
	case n <= 7:
		return 2
	default:
		return 3
	}
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
