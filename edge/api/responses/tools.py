"""The Responses dialect's tools: what the model is given, what is dropped, and how the names
the model sees map back to the tools the client declared. Nothing here does I/O.

Per tool type (README "Responses API"):

- ``function``: sent as it is.
- ``namespace`` (a group of function tools under a name, as Codex sends its sub-agent tools):
  flattened. Each member is sent as one function named ``{namespace}__{name}`` (Codex's own
  flat form: trailing ``_`` of the namespace and leading ``_`` of the name trimmed), its
  description preceded by the namespace's. A call of a flat name comes back as the client
  declared it, ``{"name": name, "namespace": namespace}``, and a ``function_call`` input item
  carrying a ``namespace`` is flattened the same way, so the model sees one consistent name.
  The map back is built from the request's own tools, never by splitting a name on ``__``.
- Hosted tools, which OpenAI's servers run and a local model cannot (``web_search``,
  ``web_search_preview``, ``file_search``, ``code_interpreter``, ``image_generation``,
  ``computer``/``computer_use_preview``, ``mcp`` (OpenAI calls the remote server),
  ``tool_search``, ``programmatic_tool_calling``) and built-in tools whose calls are a
  format OpenAI's models are trained on (``local_shell``, ``shell``, ``apply_patch``): dropped.
  The model is not told of them; the reply says which were dropped in the
  ``x-llmtunnel-dropped-tools`` header, and the response object's ``tools`` lists only the
  tools the model was given. A request whose only tools are dropped runs with none. Nothing
  else is added to the body (``metadata`` is the client's, and the Responses API has no field
  for warnings); the SDKs show the header through their raw-response accessors and debug logs.
- ``custom`` (a freeform tool, whose input is text, as Codex's ``apply_patch``, at the top or in
  a namespace): sent as a function with one string parameter, ``input`` (its grammar, if any, in
  that parameter's description); the model's call comes back as a ``custom_tool_call`` whose
  ``input`` is that string, and such an item sent back as input reaches the model as the same
  function call again.
- Anything else (types this edge does not know): a 400 naming it.

``tool_choice`` then narrows what is sent: ``none`` sends nothing, a function (by its name, its
flat name, or ``name`` and ``namespace``) or ``allowed_tools`` only those, ``auto`` and
``required`` everything (Ollama cannot force a call). A ``tool_choice`` naming a dropped tool
is a 400: the client asked for something that cannot happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.errors import bad_request

DROPPED_HEADER = "x-llmtunnel-dropped-tools"

# Tool types dropped from a request: OpenAI runs them on its side, or only its own models know
# their call format.
DROPPED = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer",
        "computer_use",
        "computer_use_preview",
        "mcp",
        "tool_search",
        "programmatic_tool_calling",
        "local_shell",
        "shell",
        "apply_patch",
    }
)


def flat_name(namespace: str, name: str) -> str:
    """The one name a namespaced function is sent to the model under (Codex's flat form)."""
    return f"{namespace.rstrip('_')}__{name.lstrip('_')}"


@dataclass(slots=True)
class Tools:
    """A request's tools, resolved: what the model gets and how to answer in the client's
    terms."""

    chat: list[dict[str, Any]] = field(default_factory=list)  # chat tools sent to the model
    dropped: list[str] = field(default_factory=list)  # dropped tool types, each once, in order
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # flat → (namespace, name)
    custom: set[str] = field(default_factory=set)  # the model-side names of custom tools
    echo: list[dict[str, Any]] = field(default_factory=list)  # the response object's `tools`

    def call_name(self, name: str) -> dict[str, str]:
        """A call of ``name`` (as the model sent it) in the client's terms."""
        if name in self.names:
            namespace, member = self.names[name]
            return {"name": member, "namespace": namespace}
        return {"name": name}

    @property
    def headers(self) -> dict[str, str]:
        return {DROPPED_HEADER: ", ".join(self.dropped)} if self.dropped else {}


@dataclass(slots=True)
class _Function:
    name: str  # as the model sees it
    namespace: str | None
    member: str  # the name the client declared
    chat: dict[str, Any]
    echo: dict[str, Any]
    custom: bool = False


CUSTOM_INPUT = "input"  # the one parameter a custom tool is sent with


def _custom_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    """A custom tool's input as a function's parameters: one string, described by the tool's
    format (a grammar is given to the model as text: Ollama cannot constrain a call to it)."""
    about = "The tool's whole input, as plain text (not JSON)."
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if isinstance(definition, str):
            about += f" It must follow this {syntax or ''} grammar:\n{definition}"
    return {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": about}},
        "required": [CUSTOM_INPUT],
    }


def resolve_tools(tools: list[dict[str, Any]] | None, tool_choice: object) -> Tools:
    """The tools of a request (its ``tools`` and ``tool_choice``), resolved."""
    resolved = Tools()
    functions: list[_Function] = []
    echo_order: list[tuple[str, Any]] = []  # ("function", _Function) or ("namespace", spec)
    for index, tool in enumerate(tools or []):
        where = f"tools.{index}"
        kind = tool.get("type")
        if kind in ("function", "custom"):
            function = _function(tool, where, None)
            functions.append(function)
            echo_order.append(("function", function))
        elif kind == "namespace":
            members = _namespace(tool, where)
            functions += members
            echo_order.append(("namespace", (tool, members)))
        elif isinstance(kind, str) and kind in DROPPED:
            if kind not in resolved.dropped:
                resolved.dropped.append(kind)
        else:
            raise bad_request(
                f"tools of type {kind!r} are not supported: `function`, `custom` and `namespace` "
                "tools, which your code runs, are sent to the model; hosted tools ("
                + ", ".join(sorted(DROPPED))
                + ") are dropped",
                param=f"{where}.type",
            )
    seen: set[str] = set()
    for function in functions:
        if function.name in seen:
            raise bad_request(
                f"two tools would reach the model as {function.name!r}: rename one",
                param="tools",
            )
        seen.add(function.name)
        if function.namespace is not None:
            resolved.names[function.name] = (function.namespace, function.member)
        if function.custom:
            resolved.custom.add(function.name)
    chosen = _chosen(functions, tool_choice, resolved.dropped)
    resolved.chat = [f.chat for f in functions if f.name in chosen]
    for kind, entry in echo_order:
        if kind == "function" and entry.name in chosen:
            resolved.echo.append(entry.echo)
        elif kind == "namespace":
            spec, members = entry
            kept = [m.echo for m in members if m.name in chosen]
            if kept:
                resolved.echo.append(
                    {
                        "type": "namespace",
                        "name": spec["name"],
                        "description": spec.get("description") or "",
                        "tools": kept,
                    }
                )
    return resolved


def _function(tool: dict[str, Any], where: str, namespace: dict[str, Any] | None) -> _Function:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("a function tool needs a name", param=f"{where}.name")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise bad_request("description must be a string", param=f"{where}.description")
    custom = tool.get("type") == "custom"
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise bad_request("parameters must be a JSON schema object", param=f"{where}.parameters")
    if custom:
        parameters = _custom_parameters(tool)
    function: dict[str, Any] = {"name": name}
    sent_description = description
    if namespace is not None:
        function["name"] = flat_name(namespace["name"], name)
        about = namespace.get("description")
        if isinstance(about, str) and about:
            sent_description = f"{about}\n\n{description}" if description else about
    if sent_description is not None:
        function["description"] = sent_description
    if parameters is not None:
        function["parameters"] = parameters
    echo: dict[str, Any]
    if custom:
        echo = {"type": "custom", "name": name, "description": description}
        if isinstance(tool.get("format"), dict):
            echo["format"] = tool["format"]
    else:
        echo = {
            "type": "function",
            "name": name,
            "description": description,
            "parameters": parameters,
            "strict": tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
        }
    return _Function(
        function["name"],
        namespace["name"] if namespace is not None else None,
        name,
        {"type": "function", "function": function},
        echo,
        custom,
    )


def _namespace(tool: dict[str, Any], where: str) -> list[_Function]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("a namespace tool needs a name", param=f"{where}.name")
    members = tool.get("tools")
    if not isinstance(members, list):
        raise bad_request("a namespace tool needs its list of tools", param=f"{where}.tools")
    functions = []
    for number, member in enumerate(members):
        at = f"{where}.tools.{number}"
        kind = member.get("type") if isinstance(member, dict) else None
        if kind not in ("function", "custom") or not isinstance(member, dict):
            raise bad_request(
                f"tools of type {kind!r} in a namespace are not supported: only `function` "
                "and `custom` tools are",
                param=f"{at}.type",
            )
        functions.append(_function(member, at, tool))
    return functions


def _chosen(functions: list[_Function], choice: object, dropped: list[str]) -> set[str]:
    """The model-side names of the tools ``tool_choice`` leaves callable."""
    everything = {f.name for f in functions}
    if choice is None or choice in ("auto", "required"):
        return everything
    if choice == "none":
        return set()
    if not isinstance(choice, dict):
        raise bad_request(
            "tool_choice must be none, auto, required or an object", param="tool_choice"
        )
    kind = choice.get("type")
    if isinstance(kind, str) and kind in DROPPED:
        raise _names_dropped([kind])
    if kind in ("function", "custom"):
        chosen = _matching(functions, choice)
    elif kind == "allowed_tools" and isinstance(choice.get("tools"), list):
        entries = [t for t in choice["tools"] if isinstance(t, dict)]
        chosen = set()
        unavailable = []
        for entry in entries:
            entry_kind = entry.get("type")
            if entry_kind in ("function", "custom"):
                chosen |= _matching(functions, entry)
            elif entry_kind == "namespace":
                chosen |= {f.name for f in functions if f.namespace == entry.get("name")}
            elif isinstance(entry_kind, str) and entry_kind in DROPPED:
                unavailable.append(entry_kind)
        if not chosen and unavailable:
            raise _names_dropped(unavailable)
    else:
        raise bad_request(
            "tool_choice must be none, auto, required, {type: function, name} or allowed_tools "
            "listing function tools",
            param="tool_choice",
        )
    if not chosen:
        raise bad_request(
            "tool_choice names no function tool given in `tools`", param="tool_choice"
        )
    return chosen


def _matching(functions: list[_Function], choice: dict[str, Any]) -> set[str]:
    name, namespace = choice.get("name"), choice.get("namespace")
    if not isinstance(name, str):
        return set()
    if isinstance(namespace, str):
        return {f.name for f in functions if f.namespace == namespace and f.member == name}
    return {f.name for f in functions if f.name == name or f.member == name}


def _names_dropped(kinds: list[str]) -> Exception:
    named = ", ".join(f"`{k}`" for k in kinds)
    return bad_request(
        f"tool_choice names {named}, a hosted tool this server drops: the models here run on "
        "a private machine and cannot use OpenAI's hosted tools; choose a function tool",
        param="tool_choice",
    )
