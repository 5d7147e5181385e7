# Writes common/version_info.h into the build tree: the project version and the git commit.
# Run by the klag_version_info target on every build (cmake -P), so a new commit shows in
# `--version` without re-configuring; configure_file rewrites the header only when its text
# changes, so an unchanged commit recompiles nothing.
#
#   cmake -DSOURCE_DIR=... -DOUTPUT=.../version_info.h -DVERSION=0.1.0 [-DGIT_COMMIT=abc] -P version.cmake
if(NOT GIT_COMMIT)
  set(GIT_COMMIT unknown)
  find_package(Git QUIET)
  if(GIT_FOUND)
    execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                    WORKING_DIRECTORY ${SOURCE_DIR}
                    OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE result ERROR_QUIET)
    if(result EQUAL 0 AND commit MATCHES "^[0-9a-f]+$")
      set(GIT_COMMIT ${commit})
    endif()
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/version_info.h.in ${OUTPUT} @ONLY)
