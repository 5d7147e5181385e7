// kubecheck validates Kubernetes objects offline, as the API server's strict field validation
// would: every built-in kind against the Kubernetes schema that client-go carries (the
// structured-merge-diff schema generated from the Kubernetes OpenAPI, the one server-side apply
// uses), plus a strict decode into the Go type (unknown and duplicate fields, wrong types); a
// monitoring.coreos.com/v1 ServiceMonitor by a strict decode into prometheus-operator's Go type.
// Other kinds (KEDA's) are reported as "unchecked": tests/deploy validates them against KEDA's
// CRD schemas.
//
//	kustomize build deploy/ | kubecheck -          # or: kubecheck FILE...
//
// Prints one JSON line per object: {"kind", "apiVersion", "namespace", "name", "result",
// "errors"}, result "valid", "invalid" or "unchecked". Exit status 1 when any object is invalid
// or a document does not parse, 0 otherwise. Built by scripts/tools.sh.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

var monitoringScheme = runtime.NewScheme()

type result struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Namespace  string   `json:"namespace,omitempty"`
	Name       string   `json:"name"`
	Result     string   `json:"result"`
	Errors     []string `json:"errors,omitempty"`
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: kubecheck FILE... (- for standard input)")
		os.Exit(2)
	}
	if err := monitoringv1.AddToScheme(monitoringScheme); err != nil {
		fail(err)
	}
	builtinStrict := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	monitoringStrict := serializer.NewCodecFactory(monitoringScheme, serializer.EnableStrict).UniversalDeserializer()
	converter := applyconfigurations.NewTypeConverter(scheme.Scheme)

	bad := false
	out := json.NewEncoder(os.Stdout)
	for _, path := range args {
		docs, err := documents(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %s: %v\n", path, err)
			bad = true
			continue
		}
		for i, doc := range docs {
			r, err := check(doc, builtinStrict, monitoringStrict, converter)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kubecheck: %s: document %d: %v\n", path, i+1, err)
				bad = true
				continue
			}
			if r.Result == "invalid" {
				bad = true
			}
			if err := out.Encode(r); err != nil {
				fail(err)
			}
		}
	}
	if bad {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
	os.Exit(2)
}

// documents splits a YAML stream into its non-empty documents, each converted to JSON.
func documents(path string) ([][]byte, error) {
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out [][]byte
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, err
		}
		if string(bytes.TrimSpace(j)) == "null" {
			continue
		}
		out = append(out, j)
	}
}

func check(doc []byte, builtin, monitoring runtime.Decoder,
	converter managedfields.TypeConverter) (result, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc); err != nil {
		return result{}, err
	}
	gvk := u.GroupVersionKind()
	r := result{Kind: gvk.Kind, APIVersion: u.GetAPIVersion(), Namespace: u.GetNamespace(),
		Name: u.GetName(), Result: "valid"}
	switch {
	case scheme.Scheme.Recognizes(gvk):
		if _, _, err := builtin.Decode(doc, nil, nil); err != nil {
			r.Errors = append(r.Errors, "strict decoding: "+err.Error())
		}
		if _, err := converter.ObjectToTyped(u); err != nil {
			r.Errors = append(r.Errors, "schema: "+err.Error())
		}
	case monitoringScheme.Recognizes(gvk):
		if _, _, err := monitoring.Decode(doc, nil, nil); err != nil {
			r.Errors = append(r.Errors, "strict decoding: "+err.Error())
		}
	default:
		r.Result = "unchecked"
	}
	if r.Name == "" {
		r.Errors = append(r.Errors, "metadata.name is empty")
	}
	if len(r.Errors) > 0 {
		r.Result = "invalid"
	}
	return r, nil
}
