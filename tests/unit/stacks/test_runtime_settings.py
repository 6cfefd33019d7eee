"""Every setting round-trips through the synthesized templates: each function's environment, and each
timeline host's env file, parses with the settings class its runtime reads, to exactly what the
config says, and names nothing else (no table a function has no grant on)."""

from __future__ import annotations

from typing import Any

from aviary import naming
from aviary.api_settings import ApiHealthSettings, ApiMediaSettings, ApiTweetsSettings, ApiUsersSettings
from aviary.consumer_settings import DuplicatePostsSettings, EdgeCountsSettings, MediaProcessorSettings
from aviary.host_settings import TimelineHostSettings
from aviary.schema import IDEMPOTENCY, MEDIA, SOCIAL_GRAPH, TWEETS
from aviary.settings import EnvironmentSettings
from aviary.timeline_settings import DEFAULT_RETENTION_DAYS, TimelineSettings
from stacks.components.host_fleet import CACHE_MOUNT
from stacks.components.timeline_load_balancer import SERVICE_PORT
from stacks.names import stack_name

# The settings class each handler reads at cold start.
SETTINGS_OF_HANDLER: dict[str, type[EnvironmentSettings]] = {
    "lambda_functions.api.tweets.handler": ApiTweetsSettings,
    "lambda_functions.api.users.handler": ApiUsersSettings,
    "lambda_functions.api.media.handler": ApiMediaSettings,
    "lambda_functions.api.health.handler": ApiHealthSettings,
    "lambda_functions.fanout.handler.handler": TimelineSettings,
    "lambda_functions.follow_stream.handler.handler": TimelineSettings,
    "lambda_functions.timeline_repair.handler.handler": TimelineSettings,
    "lambda_functions.graph_stream.handler.handler": EdgeCountsSettings,
    "lambda_functions.idempotency_stream.handler.handler": DuplicatePostsSettings,
    "lambda_functions.media_processor.handler.handler": MediaProcessorSettings,
}
# Set by the Lambda runtime in every function, never by the stack.
LAMBDA_REGION = "AWS_REGION"
ENV_FILE_OPENING = "cat > /etc/aviary/timeline.env <<'ENV'\n"


class Resolver:
    """Template values as text: a reference to another stack's output becomes "<stack>/<logical ID>"
    of the resource the output names, so it can be compared with what the config says."""

    def __init__(self, assembly: Any) -> None:
        self.assembly = assembly

    def output(self, stack: str, *, key: str | None = None, export: str | None = None) -> str:
        outputs = self.assembly.template_json(stack)["Outputs"]
        [value] = [
            output["Value"]
            for name, output in outputs.items()
            if name == key or (export and output.get("Export", {}).get("Name") == export)
        ]
        return f"{stack}/{value['Ref']}"

    def text(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        [(function, argument)] = value.items()
        if function == "Fn::GetStackOutput":
            return self.output(argument["StackName"], key=argument["OutputName"])
        if function == "Fn::ImportValue":
            return self.output(argument.split(":", 1)[0], export=argument)
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(self.text(part) for part in parts)
        if function == "Fn::Base64":
            return self.text(argument)
        # Anything else (the bundle's S3 URL, the stack's name) is not a setting: a placeholder.
        return f"<{function}>"


def derived_table(assembly: Any, region: str, prefix: str) -> str:
    """The data stack's table whose logical ID starts with `prefix`, as Resolver names it."""
    data = stack_name("Data", region)
    [logical_id] = [lid for lid in assembly.resources(data, "AWS::DynamoDB::Table") if lid.startswith(prefix)]
    return f"{data}/{logical_id}"


def expected_settings(assembly: Any, region: str) -> dict[type[EnvironmentSettings], EnvironmentSettings]:
    """What the config says each runtime of `region` should run with."""
    config = assembly.config
    tweets, graph = naming.table_name(TWEETS), naming.table_name(SOCIAL_GRAPH)
    idempotency, media = naming.table_name(IDEMPOTENCY), naming.table_name(MEDIA)
    bucket = naming.media_bucket_name(config.account, region)
    timelines = derived_table(assembly, region, "TimelinesTable")
    counts = derived_table(assembly, region, "CountsTable")
    return {
        ApiTweetsSettings: ApiTweetsSettings(
            social_graph_table=graph,
            tweets_table=tweets,
            idempotency_table=idempotency,
            media_table=media,
            counts_table=counts,
            media_base_url=config.media_base_url,
        ),
        ApiUsersSettings: ApiUsersSettings(social_graph_table=graph),
        ApiMediaSettings: ApiMediaSettings(social_graph_table=graph, media_table=media, media_bucket=bucket),
        ApiHealthSettings: ApiHealthSettings(
            tweets_table=tweets,
            social_graph_table=graph,
            idempotency_table=idempotency,
            media_table=media,
            region=region,
        ),
        TimelineSettings: TimelineSettings(
            timelines_table=timelines,
            tweets_table=tweets,
            social_graph_table=graph,
            counts_table=counts,
            celebrity_threshold=config.celebrity_follower_threshold,
            max_entries=config.timeline_max_entries,
            retention_days=DEFAULT_RETENTION_DAYS,
        ),
        EdgeCountsSettings: EdgeCountsSettings(counts_table=counts),
        DuplicatePostsSettings: DuplicatePostsSettings(tweets_table=tweets),
        MediaProcessorSettings: MediaProcessorSettings(media_table=media, media_bucket=bucket),
        TimelineHostSettings: TimelineHostSettings(
            region=region,
            timelines_table=timelines,
            social_graph_table=graph,
            tweets_table=tweets,
            counts_table=counts,
            celebrity_follower_threshold=config.celebrity_follower_threshold,
            cache_mount=CACHE_MOUNT,
            port=SERVICE_PORT,
            token_settings_parameter=naming.TOKEN_SETTINGS_PARAMETER,
            media_base_url=config.media_base_url,
        ),
    }


def function_environments(assembly: Any, region: str) -> dict[str, dict[str, str]]:
    """Each of our handlers' environment in the region's service stack, values resolved to text."""
    resolver = Resolver(assembly)
    return {
        function["Properties"]["Handler"]: {
            name: resolver.text(value)
            for name, value in function["Properties"]["Environment"]["Variables"].items()
        }
        for function in assembly.resources(stack_name("Service", region), "AWS::Lambda::Function").values()
        if function["Properties"].get("Handler", "").startswith("lambda_functions.")
        and "token_settings" not in function["Properties"]["Handler"]  # deploy-time, reads no settings
    }


def host_environment(assembly: Any, region: str) -> dict[str, str]:
    """The variables of the env file the hosts' user data writes."""
    [template] = assembly.resources(stack_name("Service", region), "AWS::EC2::LaunchTemplate").values()
    user_data = Resolver(assembly).text(template["Properties"]["LaunchTemplateData"]["UserData"])
    start = user_data.index(ENV_FILE_OPENING) + len(ENV_FILE_OPENING)
    env_file = user_data[start : user_data.index("\nENV\n", start)]
    return dict(line.split("=", 1) for line in env_file.splitlines())


def aviary_variables(environment: dict[str, str]) -> set[str]:
    return {name for name in environment if name.startswith("AVIARY_")}


def test_every_function_reads_back_what_the_config_says_and_is_told_nothing_else(assembly):
    for region in assembly.config.region_names:
        expected = expected_settings(assembly, region)
        environments = function_environments(assembly, region)
        assert set(environments) == set(SETTINGS_OF_HANDLER), region
        for handler, environment in environments.items():
            settings_class = SETTINGS_OF_HANDLER[handler]
            parsed = settings_class.from_environment({**environment, LAMBDA_REGION: region})
            assert parsed == expected[settings_class], handler
            # Every variable written is one the handler reads: no table it has no grant on.
            assert aviary_variables(environment) == set(settings_class.variables()), handler


def test_every_function_states_each_variable_its_settings_read_even_those_with_defaults(assembly):
    # A default in the runtime is not a deployed value: the template says what runs.
    for region in assembly.config.region_names:
        for handler, environment in function_environments(assembly, region).items():
            missing = set(SETTINGS_OF_HANDLER[handler].variables()) - set(environment)
            assert not missing, f"{handler} in {region} lacks {sorted(missing)}"


def test_every_host_reads_back_what_the_config_says_from_its_env_file(assembly):
    for region in assembly.config.region_names:
        environment = host_environment(assembly, region)
        parsed = TimelineHostSettings.from_environment(environment)
        assert parsed == expected_settings(assembly, region)[TimelineHostSettings]
        assert environment == parsed.to_environment()  # nothing in the file the service does not read
