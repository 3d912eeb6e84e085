package workers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// DefaultDeployment is the Temporal Worker Deployment that clozeloop's
// workers join when they run with a build id.
const DefaultDeployment = "clozeloop"

// Versioning names the Worker Deployment Version a worker process belongs
// to: its deployment and the build id of its code. The zero value runs
// unversioned workers (the embedded dev default).
//
// Versioned workers pin every workflow they start to their version: a
// round that one build started is finished by workers of that build, on
// both task queues, even after a newer build became the deployment's
// current version. Each ActiveLearning round continues as new with
// auto-upgrade, so a run moves to the current version at its next round
// boundary and never in the middle of a round.
type Versioning struct {
	// Deployment defaults to DefaultDeployment when BuildID is set.
	Deployment string `json:"deployment,omitempty"`
	// BuildID identifies the workers' code, e.g. the image tag or git
	// commit. Empty means unversioned.
	BuildID string `json:"build_id,omitempty"`
}

// buildIDPattern and deploymentPattern are what build ids and deployment
// names may look like: the server joins them with ':' (and before 1.32
// '.') into version strings, refuses those in deployment names, and the
// version is quoted in visibility queries.
var (
	buildIDPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,127}$`)
	deploymentPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+\-]{0,127}$`)
)

// Validate reports a deployment name or build id that cannot be used.
func (v Versioning) Validate() error {
	if v.BuildID == "" {
		if v.Deployment != "" && v.Deployment != DefaultDeployment {
			return fmt.Errorf("worker deployment %q given without a build id: versioned workers need both", v.Deployment)
		}
		return nil
	}
	if !buildIDPattern.MatchString(v.BuildID) {
		return fmt.Errorf("build id %q: want 1-128 letters, digits, '_', '.', '+' or '-', starting with a letter or digit", v.BuildID)
	}
	if v.Deployment != "" && !deploymentPattern.MatchString(v.Deployment) {
		return fmt.Errorf("worker deployment %q: want 1-128 letters, digits, '_', '+' or '-', starting with a letter or digit", v.Deployment)
	}
	return nil
}

// Enabled reports whether the workers are versioned.
func (v Versioning) Enabled() bool { return v.BuildID != "" }

// DeploymentName is the deployment, DefaultDeployment when empty.
func (v Versioning) DeploymentName() string {
	if v.Deployment == "" {
		return DefaultDeployment
	}
	return v.Deployment
}

// String is the version as Temporal writes it: "deployment:build-id".
func (v Versioning) String() string {
	if !v.Enabled() {
		return "unversioned"
	}
	return v.DeploymentName() + ":" + v.BuildID
}

// deploymentOptions are the SDK worker options for v.
func (v Versioning) deploymentOptions() worker.DeploymentOptions {
	if !v.Enabled() {
		return worker.DeploymentOptions{}
	}
	return worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: v.DeploymentName(), BuildID: v.BuildID},
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}
}

// DeploymentVersion describes one version of a Worker Deployment.
type DeploymentVersion struct {
	BuildID string `json:"build_id"`
	// Status is "current", "ramping" or "inactive"/"draining"/"drained"
	// (for versions that no longer receive new workflows).
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// OpenRuns are the workflow ids of open executions pinned to this
	// version; the version's workers must keep running until it is empty.
	OpenRuns []string `json:"open_runs"`
}

// DeploymentStatus describes a Worker Deployment.
type DeploymentStatus struct {
	Deployment     string              `json:"deployment"`
	CurrentBuildID string              `json:"current_build_id,omitempty"`
	RampingBuildID string              `json:"ramping_build_id,omitempty"`
	RampPercentage float32             `json:"ramp_percentage,omitempty"`
	Versions       []DeploymentVersion `json:"versions"`
}

// DescribeDeployment reports the deployment's versions, which one is
// current, each version's drainage and the open runs still pinned to it.
func DescribeDeployment(ctx context.Context, c client.Client, deployment string) (DeploymentStatus, error) {
	st := DeploymentStatus{Deployment: deployment, Versions: []DeploymentVersion{}}
	h := c.WorkerDeploymentClient().GetHandle(deployment)
	d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return st, fmt.Errorf("describe worker deployment %s: %w", deployment, err)
	}
	rc := d.Info.RoutingConfig
	if rc.CurrentVersion != nil {
		st.CurrentBuildID = rc.CurrentVersion.BuildID
	}
	if rc.RampingVersion != nil {
		st.RampingBuildID, st.RampPercentage = rc.RampingVersion.BuildID, rc.RampingVersionPercentage
	}
	for _, s := range d.Info.VersionSummaries {
		v := DeploymentVersion{BuildID: s.Version.BuildID, CreatedAt: s.CreateTime, Status: "inactive", OpenRuns: []string{}}
		switch {
		case s.Version.BuildID == st.CurrentBuildID:
			v.Status = "current"
		case s.Version.BuildID == st.RampingBuildID:
			v.Status = "ramping"
		case s.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDraining:
			v.Status = "draining"
		case s.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDrained:
			v.Status = "drained"
		}
		if v.OpenRuns, err = openRunsOn(ctx, c, deployment, s.Version.BuildID); err != nil {
			return st, err
		}
		st.Versions = append(st.Versions, v)
	}
	sort.Slice(st.Versions, func(i, j int) bool { return st.Versions[i].CreatedAt.Before(st.Versions[j].CreatedAt) })
	return st, nil
}

// openRunsOn lists the ids of running workflows pinned to a version,
// through the TemporalWorkerDeploymentVersion search attribute.
func openRunsOn(ctx context.Context, c client.Client, deployment, buildID string) ([]string, error) {
	q := fmt.Sprintf("TemporalWorkerDeploymentVersion = '%s:%s' AND ExecutionStatus = 'Running'", deployment, buildID)
	ids := []string{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list runs on %s:%s: %w", deployment, buildID, err)
		}
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// SetCurrentOptions configure SetCurrentVersion.
type SetCurrentOptions struct {
	// Wait is how long to wait for the version's workers to register
	// (they do when they first poll); 0 tries once.
	Wait time.Duration
	// IgnoreMissingTaskQueues makes the version current even when its
	// workers do not poll every task queue of the current version (for
	// example, no GPU worker of the new build is up yet). Without it the
	// server refuses, so that no round's fine-tune waits for a queue that
	// nobody of the new build serves.
	IgnoreMissingTaskQueues bool
	Identity                string
}

// SetCurrentVersion makes buildID the deployment's current version: new
// runs, and runs reaching a round boundary, go to its workers; runs pinned
// to older versions stay where they are.
func SetCurrentVersion(ctx context.Context, c client.Client, deployment, buildID string, o SetCurrentOptions) (previous string, err error) {
	if err := (Versioning{Deployment: deployment, BuildID: buildID}).Validate(); err != nil {
		return "", err
	}
	h := c.WorkerDeploymentClient().GetHandle(deployment)
	deadline := time.Now().Add(o.Wait)
	for {
		resp, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{
			BuildID: buildID, IgnoreMissingTaskQueues: o.IgnoreMissingTaskQueues, Identity: o.Identity})
		if err == nil {
			if resp.PreviousVersion != nil {
				previous = resp.PreviousVersion.BuildID
			}
			return previous, nil
		}
		if !retryableSetCurrent(err) || time.Now().After(deadline) {
			return "", fmt.Errorf("make %s:%s the current version: %w", deployment, buildID, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("make %s:%s the current version: %w (last error: %v)", deployment, buildID, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// retryableSetCurrent reports errors that go away once the version's
// workers have polled: the deployment or version does not exist yet, or
// a task queue of the current version has no poller of the new one yet.
func retryableSetCurrent(err error) bool {
	var nf *serviceerror.NotFound
	var fp *serviceerror.FailedPrecondition
	return errors.As(err, &nf) || errors.As(err, &fp)
}
