"""`hmr-serve graph`: the import map as a front-end of the reload engine's static pass.
`command` is the subcommand (parser, output choice); `model` the map and its walks; `render`
the JSON and DOT output; `runtime` the optional import of the app under the import tracker."""
