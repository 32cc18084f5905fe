"""Drop the optional parts that were not chosen; print the next steps."""
import shutil

USE_ALEMBIC = '{{ cookiecutter.use_alembic }}' == 'yes'
REQUIREMENT = '{{ cookiecutter._tgstream_requirement }}'

if not USE_ALEMBIC:
    shutil.rmtree('alembic')

print(
    '\nCreated {{ cookiecutter.repo_name }}/. Next steps:\n\n'
    '    cd {{ cookiecutter.repo_name }}\n'
    '    python -m venv .venv && . .venv/bin/activate\n'
    '    pip install -e ".[testing]"\n'
    + ('    alembic -c development.ini upgrade head\n' if USE_ALEMBIC else '')
    + '    initialize_{{ cookiecutter.repo_name }}_db development.ini\n'
    '    pytest\n'
    '    pserve development.ini              # http://localhost:6544\n'
    + ('\npyproject.toml requires %s\n' % REQUIREMENT if REQUIREMENT != 'tgstream' else '')
)
