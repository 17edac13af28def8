// The one module that imports the host interface of `wit/task.wit`.
//
// componentize-js provides `cairn:task/host@0.1.0` as a built-in module of
// the component; the unit tests resolve it to a fake (`test/support`).
// Everything else in the SDK goes through these bindings.

export { inputs, log, readInput, secret, writeOutput } from 'cairn:task/host@0.1.0';
