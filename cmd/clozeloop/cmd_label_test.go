package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clozeloop/clozeloop/workflows"
)

func TestLabelUpdate(t *testing.T) {
	tests := []struct {
		name      string
		round     int
		annotator string
		close     bool
		extend    time.Duration
		reason    string
		answers   []string
		wantName  string
		wantArg   any
		wantErr   string
	}{
		{name: "one blank", round: 1, annotator: "ann", answers: []string{"it-1=dog"}, wantName: workflows.UpdateSubmitLabels,
			wantArg: workflows.LabelSubmission{Round: 1, Annotator: "ann", Answers: []workflows.Answer{{ItemID: "it-1", Answers: []string{"dog"}}}}},
		{name: "a list per blank", round: 2, annotator: "ann", answers: []string{"it-1=red | car", "it-2=cat"}, wantName: workflows.UpdateSubmitLabels,
			wantArg: workflows.LabelSubmission{Round: 2, Annotator: "ann", Answers: []workflows.Answer{
				{ItemID: "it-1", Answers: []string{"red", "car"}}, {ItemID: "it-2", Answers: []string{"cat"}}}}},
		{name: "an empty blank", round: 1, annotator: "ann", answers: []string{"it-1=red|"}, wantErr: "blank 2 is empty"},
		{name: "no =", round: 1, annotator: "ann", answers: []string{"it-1"}, wantErr: "want ITEM=ANSWER"},
		{name: "no annotator", round: 1, answers: []string{"it-1=dog"}, wantErr: "--annotator"},
		{name: "no answers", round: 1, annotator: "ann", wantErr: "at least one"},
		{name: "no round", annotator: "ann", answers: []string{"it-1=dog"}, wantErr: "--round"},
		{name: "close", round: 3, close: true, wantName: workflows.CloseRound,
			wantArg: workflows.CloseRequest{Round: 3, Reason: "closed from the CLI"}},
		{name: "extend", round: 3, extend: 24 * time.Hour, reason: "holiday", wantName: workflows.ExtendRound,
			wantArg: workflows.ExtendRequest{Round: 3, Extend: workflows.Duration(24 * time.Hour), Reason: "holiday"}},
		{name: "extend by a negative duration", round: 3, extend: -time.Hour, wantErr: "positive duration"},
		{name: "extend by more than 30 days", round: 3, extend: 721 * time.Hour, wantErr: "30 days"},
		{name: "close and extend", round: 3, close: true, extend: time.Hour, wantErr: "exclude each other"},
		{name: "extend with answers", round: 3, extend: time.Hour, answers: []string{"it-1=dog"}, wantErr: "take no answers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, out, err := labelUpdate(tt.round, tt.annotator, tt.close, tt.extend, tt.reason, tt.answers)
			if tt.wantErr != "" {
				var ue usageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.UpdateName != tt.wantName || len(req.Args) != 1 || !reflect.DeepEqual(req.Args[0], tt.wantArg) {
				t.Errorf("update %s %+v, want %s %+v", req.UpdateName, req.Args, tt.wantName, tt.wantArg)
			}
			if out == nil {
				t.Error("no result value")
			}
		})
	}
}
