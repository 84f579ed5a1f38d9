from handful.cli import app

app(prog_name="handful")
