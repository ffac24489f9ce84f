from llmtunnel.cli import app

app(prog_name="llmtunnel")
