package hook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/clozeloop/clozeloop/workflows"
)

// checkBlanks checks a submission against the open batch before it is sent:
// every answer has one entry per [MASK] of its item, and every entry passes
// the workflow's normalisation (no invisible characters, not too long, no
// "|" in multi-blank answers). A mismatch is 422 with the reason, on the
// signal path (async) too, where the workflow could only record it as
// rejected. An item the open batch does not hold, or twice in one request,
// is 422 too, so that a signal never carries more than the batch's items.
// Submissions for another round are left to the workflow, which says why
// (409).
func (h *Handler) checkBlanks(w http.ResponseWriter, r *http.Request, run string, sub workflows.LabelSubmission) bool {
	ctx, cancel := h.queryCtx(r)
	defer cancel()
	batch, err := h.backend.Batch(ctx, run)
	if err != nil {
		writeBackendError(w, err)
		return false
	}
	if err := blanksMatch(sub, batch); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return false
	}
	return true
}

// blanksMatch is checkBlanks without HTTP.
func blanksMatch(sub workflows.LabelSubmission, batch workflows.BatchView) error {
	if batch.Round != sub.Round {
		return nil
	}
	masks := make(map[string]int, len(batch.Items))
	for _, it := range batch.Items {
		masks[it.ItemID] = max(1, strings.Count(it.Text, "[MASK]"))
	}
	seen := make(map[string]bool, len(sub.Answers))
	for _, a := range sub.Answers {
		n, ok := masks[a.ItemID]
		if !ok {
			return fmt.Errorf("unknown item id %q in round %d", a.ItemID, batch.Round)
		}
		if seen[a.ItemID] {
			return fmt.Errorf("item %q appears twice in the submission", a.ItemID)
		}
		seen[a.ItemID] = true
		if len(a.Answers) != n {
			return fmt.Errorf("item %q has %d blank(s) ([MASK]) but the answer has %d: give one answer per blank, in order", a.ItemID, n, len(a.Answers))
		}
		for i, b := range a.Answers {
			if _, err := workflows.NormalizeAnswer(b, true, n > 1); err != nil {
				if n > 1 {
					return fmt.Errorf("item %q, blank %d: %w", a.ItemID, i+1, err)
				}
				return fmt.Errorf("item %q: %w", a.ItemID, err)
			}
		}
	}
	return nil
}
