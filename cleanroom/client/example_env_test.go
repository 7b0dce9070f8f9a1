package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The examples' coordinator: one, served by coordinator.Serve on the
// simulated platform for the whole test binary.
var (
	envOnce sync.Once
	envSrv  *testenv.Server
	envDir  string
	envN    int
)

func TestMain(m *testing.M) {
	code := m.Run()
	if envSrv != nil {
		envSrv.Stop()
	}
	if envDir != "" {
		os.RemoveAll(envDir)
	}
	os.Exit(code)
}

func server() *testenv.Server {
	envOnce.Do(func() {
		var err error
		if envDir, err = os.MkdirTemp("", "client-example-"); err != nil {
			log.Fatal(err)
		}
		if envSrv, err = testenv.StartE(envDir+"/coordinator", coordinator.Config{}); err != nil {
			log.Fatal(err)
		}
	})
	return envSrv
}

const (
	exampleQuery   = testenv.AdQuery
	impressionsCSV = testenv.ImpressionsCSV
	conversionsCSV = testenv.ConversionsCSV
)

// How far the other parties have played an example's contract.
type stage int

const (
	stageSigned     stage = iota // every participant signed; not registered
	stageRegistered              // registered
	stageUploaded                // both datasets uploaded
	stageSubmitted               // the algorithm submitted
	stageRun                     // one run finished
	stageFetched                 // its result fetched, and a checkpoint covers the log
)

// example is a contract as its parties hold it.
type example struct {
	URL              string
	Contract         *contracts.Contract
	Text             []byte
	Signatures       []contracts.SignedBy
	CoordinatorKey   *cleanroom.PublicKey
	IdentityDocument []byte
	RunID            string
	Bundle           []byte
	StateDir         string
	keys             map[string]*cleanroom.Identity
}

// Key returns a participant's key.
func (e *example) Key(id string) *cleanroom.Identity { return e.keys[id] }

func (e *example) client(id string) *client.Client {
	cl, err := client.New(e.URL, client.Options{Contract: e.Contract, Identity: e.keys[id]})
	if err != nil {
		log.Fatal(err)
	}
	return cl
}

// exampleContract makes a fresh contract on the examples' coordinator (a
// publisher and an advertiser provide data, a measurer the query, the
// advertiser receives results, an auditor audits) and plays it up to s.
func exampleContract(s stage) *example {
	srv := server()
	envN++
	spec := &testenv.Spec{
		Name: fmt.Sprintf("example-%d", envN),
		Datasets: []testenv.Dataset{
			{ID: "impressions", Provider: "publisher", Columns: "[{name: user_id, type: string}, {name: campaign, type: string}]"},
			{ID: "conversions", Provider: "advertiser", Columns: "[{name: user_id, type: string}, {name: value, type: float64}]"},
		},
		Query: exampleQuery, AlgorithmBy: "measurer", Recipients: []string{"advertiser"},
		GroupColumn: "users", K: 2, MaxRows: 100, MaxRuns: 3,
	}
	e := &example{URL: srv.URL, keys: map[string]*cleanroom.Identity{}, StateDir: fmt.Sprintf("%s/audit-%d", envDir, envN)}
	for _, p := range []struct {
		id    string
		roles []contracts.Role
	}{
		{"publisher", []contracts.Role{contracts.RoleDataProvider}},
		{"advertiser", []contracts.Role{contracts.RoleDataProvider, contracts.RoleResultRecipient}},
		{"measurer", []contracts.Role{contracts.RoleAlgorithmProvider}},
		{"auditor", []contracts.Role{contracts.RoleAuditor}},
	} {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			log.Fatal(err)
		}
		e.keys[p.id] = id
		spec.Parties = append(spec.Parties, &testenv.Party{ID: p.id, Roles: p.roles, Identity: id})
	}
	coord := srv.Coord.Identity()
	e.CoordinatorKey = coord.PublicKey
	doc, err := json.Marshal(coord.Document)
	must(err)
	e.IdentityDocument = doc
	e.Text = spec.Text(coord)
	e.Contract, err = contracts.Parse(e.Text, contracts.ParseOptions{})
	must(err)
	for _, p := range spec.Parties {
		sig, err := e.Contract.Sign(p.Identity)
		must(err)
		e.Signatures = append(e.Signatures, contracts.SignedBy{Source: p.ID + ".sig", Data: sig})
	}
	ctx := context.Background()
	if s >= stageRegistered {
		_, err := e.client("publisher").RegisterContract(ctx, e.Text, e.Signatures)
		must(err)
	}
	if s >= stageUploaded {
		for _, u := range []struct{ party, ds, csv string }{{"publisher", "impressions", impressionsCSV}, {"advertiser", "conversions", conversionsCSV}} {
			rows, err := connectors.NewReader(strings.NewReader(u.csv), connectors.FormatCSV, e.Contract.Dataset(u.ds).Columns, connectors.Options{})
			must(err)
			_, err = e.client(u.party).UploadDataset(ctx, u.ds, rows, client.UploadOptions{})
			rows.Release()
			must(err)
		}
	}
	if s >= stageSubmitted {
		_, err := e.client("measurer").SubmitAlgorithm(ctx, []byte(exampleQuery), nil)
		must(err)
	}
	if s >= stageRun {
		rs, err := e.client("advertiser").Run(ctx)
		must(err)
		e.RunID = rs.RunID
	}
	if s >= stageFetched {
		res, err := e.client("advertiser").Result(ctx, e.RunID)
		must(err)
		e.Bundle = res.Bundle
		waitCheckpoint(e, srv.Coord.LogSize())
	}
	return e
}

// waitCheckpoint waits until the coordinator publishes a checkpoint of at
// least size entries.
func waitCheckpoint(e *example, size uint64) {
	cl := e.client("auditor")
	defer cl.Close()
	v, err := tlog.NewCoordinatorVerifier(e.CoordinatorKey)
	must(err)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		raw, err := cl.LogFetcher()(context.Background(), "checkpoint")
		must(err)
		cp, err := v.VerifyCheckpoint(raw)
		must(err)
		if cp.Size() >= size {
			return
		}
	}
	log.Fatalf("no checkpoint covers %d entries after 10 s", size)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
