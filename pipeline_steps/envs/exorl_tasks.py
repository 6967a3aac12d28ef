"""The custom ExORL / URLB tasks of the paper's Table 1 that dm_control's suite lacks, as dm_env envs.

Written from the authors' copy of ExORL's `custom_dmc_tasks` (rlbase/envs/exorl/custom_dmc_tasks/
{cheetah,jaco}.py in their repo), reusing dm_control's own classes where that is faithful. (URLB's
original jaco reach task differs: a Duplo brick as target, its pose observed; ExORL's is followed.)

- cheetah run_backward: dm_control's suite cheetah (same Physics, same initialize_episode, same
  observations) with the run reward's speed sign flipped; ExORL's cheetah.xml is the suite's with the
  ground plane 200 instead of 100 long (MuJoCo planes are infinite for collisions, so only rendering
  differs). 10 s time limit, 0.01 s control step -> 1000 steps.
- jaco reach_top_left / reach_top_right: a `composer` task (Kinova Jaco arm + hand on the standard
  manipulation arena, PERFECT_FEATURES observations) whose reward is 1 when the hand's tool-centre
  point is within 5 cm of a fixed target site on the table. As in ExORL the target's position is not
  observed (its observable is commented out there). 10 s time limit, 0.04 s control step -> 250 steps.

`load(domain, task)` builds one; seeds are set by the gymnasium wrapper on reset (shimmy).
"""

from __future__ import annotations

import numpy as np
from dm_control import composer
from dm_control.composer import initializers
from dm_control.composer.variation import distributions
from dm_control.manipulation.shared import (
    arenas,
    cameras,
    constants,
    observations,
    robots,
    workspaces,
)
from dm_control.rl import control
from dm_control.suite import cheetah
from dm_control.utils import rewards

from pipeline_steps.envs.names import CUSTOM_TASKS

TIME_LIMIT = 10.0  # seconds, both domains

# --------------------------------------------------------------------------------------------
# cheetah run_backward
# --------------------------------------------------------------------------------------------
RUN_SPEED = 10  # m/s above which the (backward) run reward is 1
SUITE_GROUND = b'<geom name="ground" type="plane" conaffinity="1" pos="98 0 0" size="100 .8 .5"'
EXORL_GROUND = SUITE_GROUND.replace(b'size="100 .8 .5"', b'size="200 .8 .5"')


def cheetah_model() -> tuple[bytes, dict]:
    """ExORL's cheetah.xml: dm_control's suite cheetah.xml with its ground plane 200 instead of 100 long."""
    xml, assets = cheetah.get_model_and_assets()
    assert xml.count(SUITE_GROUND) == 1, "dm_control's cheetah.xml changed: its ground geom is not there"
    return xml.replace(SUITE_GROUND, EXORL_GROUND), assets


class CheetahRunBackward(cheetah.Cheetah):
    """The suite's cheetah task rewarded for running backwards (-x) at RUN_SPEED or faster."""

    def get_reward(self, physics: cheetah.Physics) -> float:
        return rewards.tolerance(
            -physics.speed(),
            bounds=(RUN_SPEED, float("inf")),
            margin=RUN_SPEED,
            value_at_margin=0,
            sigmoid="linear",
        )


def cheetah_run_backward() -> control.Environment:
    physics = cheetah.Physics.from_xml_string(*cheetah_model())
    return control.Environment(physics, CheetahRunBackward(), time_limit=TIME_LIMIT)


# --------------------------------------------------------------------------------------------
# jaco reach_top_left / reach_top_right
# --------------------------------------------------------------------------------------------
PROP_Z_OFFSET = 0.001
TARGET_RADIUS = 0.05
JACO_TARGETS = {
    "reach_top_left": (-0.09, 0.09, PROP_Z_OFFSET),
    "reach_top_right": (0.09, 0.09, PROP_Z_OFFSET),
}
# ExORL's _SITE_WORKSPACE: where the tool-centre point starts (uniform in the box, pointing down)
TCP_BBOX = workspaces.BoundingBox(lower=(-0.2, -0.2, 0.02), upper=(0.2, 0.2, 0.4))
TARGET_BBOX = workspaces.BoundingBox(lower=(-0.2, -0.2, 0.02), upper=(0.2, 0.2, 0.4))


class ReachTarget(composer.Task):
    """ExORL's MultiTaskReach with one fixed target site (its single-target branch, use_site=True)."""

    def __init__(self, target: tuple[float, float, float], obs_settings=observations.PERFECT_FEATURES):
        self._arena = arenas.Standard()
        self._arm = robots.make_arm(obs_settings=obs_settings)
        self._hand = robots.make_hand(obs_settings=obs_settings)
        self._arm.attach(self._hand)
        self._arena.attach_offset(self._arm, offset=robots.ARM_OFFSET)
        self.control_timestep = constants.CONTROL_TIMESTEP
        self._tcp_initializer = initializers.ToolCenterPointInitializer(
            self._hand,
            self._arm,
            position=distributions.Uniform(*TCP_BBOX),
            quaternion=workspaces.DOWN_QUATERNION,
        )
        # a camera (its pixels observable is disabled under PERFECT_FEATURES), as in ExORL
        self._task_observables = cameras.add_camera_observables(
            self._arena, obs_settings, cameras.FRONT_CLOSE
        )
        self._target_pos = np.array(target, np.float64)
        self._target = workspaces.add_target_site(
            body=self._arena.mjcf_model.worldbody,
            radius=TARGET_RADIUS,
            visible=True,
            rgba=constants.RED,
            name="target_site",
        )
        # no 'target_position' observable: ExORL comments it out, so its observations lack the target
        for name, box, rgba in [
            ("tcp_spawn_area", TCP_BBOX, constants.GREEN),
            ("target_spawn_area", TARGET_BBOX, constants.BLUE),
        ]:
            workspaces.add_bbox_site(
                body=self._arena.mjcf_model.worldbody, lower=box.lower, upper=box.upper, rgba=rgba, name=name
            )

    @property
    def root_entity(self):
        return self._arena

    @property
    def arm(self):
        return self._arm

    @property
    def hand(self):
        return self._hand

    @property
    def task_observables(self):
        return self._task_observables

    def tool_center_point(self, physics) -> np.ndarray:
        """World position of the hand's tool-centre point (needs forward kinematics to be current)."""
        return physics.bind(self._hand.tool_center_point).xpos

    def get_reward(self, physics) -> float:
        distance = np.linalg.norm(self.tool_center_point(physics) - self._target_pos)
        # ExORL casts the reward to float32
        return float(np.float32(rewards.tolerance(distance, bounds=(0, TARGET_RADIUS), margin=TARGET_RADIUS)))

    def initialize_episode(self, physics, random_state):
        self._hand.set_grasp(physics, close_factors=random_state.uniform())
        self._tcp_initializer(physics, random_state)
        physics.bind(self._target).pos = self._target_pos


def jaco_reach(task: str) -> composer.Environment:
    return composer.Environment(ReachTarget(JACO_TARGETS[task]), time_limit=TIME_LIMIT)


# --------------------------------------------------------------------------------------------
TASKS = {  # names.CUSTOM_TASKS, each with its builder
    ("cheetah", "run_backward"): cheetah_run_backward,
    ("jaco", "reach_top_left"): lambda: jaco_reach("reach_top_left"),
    ("jaco", "reach_top_right"): lambda: jaco_reach("reach_top_right"),
}
assert tuple(TASKS) == CUSTOM_TASKS


def load(domain: str, task: str):
    """The dm_env environment of a custom (domain, task) of TASKS."""
    return TASKS[domain, task]()
