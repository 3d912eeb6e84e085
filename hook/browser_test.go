package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/devserver"
	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

// twoBlankEngine scores a pool of two items with two blanks each, with
// suggestions for both blanks.
type twoBlankEngine struct{ tinyEngine }

func (e twoBlankEngine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	var out []activities.ScoredItem
	for i := req.Shard; i < 2; i += req.NumShards {
		scores := map[string]float64{}
		for _, s := range req.Strategies {
			scores[s] = float64(i)
		}
		out = append(out, activities.ScoredItem{ItemID: fmt.Sprintf("it-%d", i), Text: fmt.Sprintf("the [MASK] sat on the [MASK] (%d)", i),
			Scores: scores, Suggestions: []workflows.Suggestion{{Token: "cat", Prob: 0.6}, {Token: "dog", Prob: 0.3},
				{Token: "mat", Prob: 0.5, Mask: 1}, {Token: "fish", Prob: 0.2, Mask: 1}}})
	}
	return out, nil
}

// chromiumPath finds Debian's chromium (or another Chrome) for the browser
// test.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowserKeyboard drives the annotation page in headless Chromium
// against a real ActiveLearning run on the embedded Temporal server: sign
// in with a token, answer both items of the round with the keyboard only
// (J to the next item, number keys for suggestions of each blank, Enter to
// submit), and find the answers in Status and in the persisted labels.
func TestBrowserKeyboard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server and Chromium")
	}
	chrome := chromiumPath()
	if chrome == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (Debian package chromium; make setup installs it)")
		}
		t.Skip("chromium is not installed (Debian package chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := devserver.Start(ctx, devserver.Options{FrontendAddr: "127.0.0.1:0", DataDir: t.TempDir(), Namespace: "browser-test", LogLevel: "error", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddr(), Namespace: srv.Namespace(), Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	blobs := &activities.MemBlobs{}
	eng := twoBlankEngine{tinyEngine{blobs: blobs}}
	acts := &activities.Activities{Blobs: blobs, Scorer: eng, Trainer: eng, Evaluator: eng, Logger: quiet}
	ws, err := workers.New(c, acts, workers.Options{Queues: []string{"default", "gpu"}, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	cfg := workflows.RunConfig{RunID: "browser-run", Dataset: "tiny", PoolURI: "pool", EvalURI: "eval", ModelURI: "base",
		Strategy: "entropy", BatchSize: 2, Quorum: 1, RoundDeadline: workflows.Duration(time.Hour), Budget: workflows.Budget{MaxRounds: 1}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cfg.RunID, TaskQueue: workflows.DefaultTaskQueue}, workflows.ActiveLearningName, cfg)
	if err != nil {
		t.Fatal(err)
	}

	accounts := &MemAccounts{}
	_, tok, err := AddAccount(ctx, accounts, "ann", RoleAnnotator, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Every account exists before the hook first reads them: it rereads
	// the accounts only every --accounts-ttl.
	_, leadTok, err := AddAccount(ctx, accounts, "boss", RoleLead, "test")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(NewTemporalBackend(c, srv.Namespace(), nil), Options{Logger: quiet, Auth: AuthOptions{Accounts: accounts}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	api := &Client{BaseURL: hs.URL, HTTP: hs.Client(), Token: tok}
	eventually(t, ctx, "the batch opens", func() error {
		b, err := api.Batch(ctx, cfg.RunID)
		if err == nil && (!b.Open || len(b.Items) != 2) {
			err = errors.New("round not open yet")
		}
		return err
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// A lead signs in, extends the round from the page (the prompt,
	// replaced here, answers "2h") and signs out again.
	before, err := api.Status(ctx, cfg.RunID)
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(hs.URL+"/runs/"+cfg.RunID),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), leadTok),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.ID("extend")),
		chromedp.WaitVisible(chromedp.CSS(`.item`)),
	)
	if err != nil {
		t.Fatalf("lead signs in: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.prompt = () => "2h"; true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("extend"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the page's extension reaches the workflow", func() error {
		st, err := api.Status(ctx, cfg.RunID)
		if err == nil && (st.LeadExtensions != 1 || st.Deadline.Sub(before.Deadline) != 2*time.Hour) {
			err = fmt.Errorf("status %+v, deadline before %v", st, before.Deadline)
		}
		return err
	})
	waitFor(t, bctx, "the extension's message", `#msg.ok`)
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatalf("lead signs out: %v", err)
	}

	focused := chromedp.Evaluate[string](`(() => { const d = document.activeElement.closest(".item"); return d ? d.dataset.item : ""; })()`)
	// Sign in by typing the token: the form posts it and the page opens the
	// run with the first blank of the first item focused.
	err = chromedp.Do(bctx,
		chromedp.Navigate(hs.URL+"/runs/"+cfg.RunID),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), tok),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.ID("work")),
		chromedp.WaitVisible(chromedp.CSS(`.item.current input[data-blank="0"]`)),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	who, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("who")))
	if err != nil {
		t.Fatal(err)
	}
	order, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".item")].map(d => d.dataset.item)`))
	if err != nil {
		t.Fatal(err)
	}
	chips, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll(".item")[0].querySelectorAll(".blank")].map(b => [...b.querySelectorAll(".chip")].map(c => c.textContent).join(",")).join(" | ")`))
	if err != nil {
		t.Fatal(err)
	}
	leadOnly, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.getElementById("extend").hidden && document.getElementById("close").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !leadOnly {
		t.Error("an annotator sees the Close or Extend controls")
	}
	if !strings.Contains(who, "ann (annotator)") {
		t.Errorf("header says %q, want the signed-in annotator", who)
	}
	if chips != "1cat,2dog | 1mat,2fish" {
		t.Errorf("suggestion chips per blank %q, want both blanks with their own suggestions", chips)
	}

	// Keyboard only: Esc leaves the blank, J moves to the second item, 1
	// and 2 pick suggestions for its two blanks, Enter submits.
	if err := chromedp.Do(bctx, chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("j")); err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(bctx, focused)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.KeyEvent("1"), chromedp.KeyEvent("2"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bctx, "the first item to be answered", `.item.done`)
	eventually(t, ctx, "the first answer is counted in Status", func() error {
		st, err := api.Status(ctx, cfg.RunID)
		if err == nil && (st.LabelsReceived != 1 || st.ItemsComplete != 1) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
	// After the submission the focus is on the other, still open item.
	waitFor(t, bctx, "the focus on the open item", `.item.current:not(.done) input[data-blank="0"]`)
	progress, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("progress")))
	if err != nil {
		t.Fatal(err)
	}
	second, err := chromedp.Run(bctx, focused)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.KeyEvent("2"), chromedp.KeyEvent("1"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("second item: %v", err)
	}
	if len(order) != 2 || first != order[1] || second != order[0] {
		t.Fatalf("keyboard moved to %q then %q; the page lists %q", first, second, order)
	}
	if !strings.Contains(progress, "1 / 2") {
		t.Errorf("own progress %q after one answer, want 1 / 2", progress)
	}

	var res workflows.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.LabelsTotal != 2 || len(res.History) != 1 || res.History[0].Answers != 2 {
		t.Fatalf("result %+v", res)
	}
	keys, err := blobs.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	for _, k := range keys {
		if strings.Contains(k, "/labels/round-") {
			b, err := blobs.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			var rl struct {
				Raw []json.RawMessage `json:"raw"`
			}
			if err := json.Unmarshal(b, &rl); err != nil {
				t.Fatal(err)
			}
			raw = append(raw, rl.Raw...)
		}
	}
	want := map[string][]string{first: {"cat", "fish"}, second: {"dog", "mat"}}
	for item, words := range want {
		found := false
		for _, r := range raw {
			s := string(r)
			if strings.Contains(s, `"`+item+`"`) && strings.Contains(s, `"ann"`) && strings.Contains(s, words[0]) && strings.Contains(s, words[1]) {
				found = true
			}
		}
		if !found {
			t.Errorf("no persisted answer %v by ann for %s in %s", words, item, raw)
		}
	}
}

// waitFor waits up to 30 s for selector to be visible and on failure
// reports what the page shows.
func waitFor(t *testing.T, bctx context.Context, what, selector string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
		page, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify({msg: document.getElementById("msg").textContent,
			active: document.activeElement && document.activeElement.outerHTML.slice(0, 200),
			values: [...document.querySelectorAll("input[data-blank]")].map(i => i.value),
			items: [...document.querySelectorAll(".item")].map(d => d.className)})`))
		t.Fatalf("waiting for %s (%s): %v; page: %s", what, selector, err, page)
	}
}
